/**
 * The server's packages (socket.io; redis for several instances) are optional
 * peer dependencies of weft: an app that uses weft in the browser installs
 * none of them. When one is missing, say which and what to install instead
 * of Node's bare ERR_MODULE_NOT_FOUND.
 */

/** Packages the server imports that a weft install may lack. */
const OPTIONAL = ['socket.io', 'redis'] as const

/** The optional package `err` (from an import) says is missing, if that is what it says. */
export function missingPackage(err: unknown): (typeof OPTIONAL)[number] | undefined {
  if (!(err instanceof Error)) return undefined
  const code = (err as { code?: unknown }).code
  if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') return undefined
  // "Cannot find package 'socket.io' imported from …"
  return OPTIONAL.find((p) => err.message.includes(`'${p}'`))
}
