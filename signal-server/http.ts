/**
 * The plain HTTP side of the signal server: `/healthz`, `/metrics` (rendered
 * at most ten times a second, however often it is asked for), and the
 * built demo page and bundles from a static folder (or an app's own files,
 * with weft's bundles from a second folder when the app's has none). socket.io takes
 * `/socket.io/` before these handlers see anything. Every answer allows any
 * origin: the bundle is meant to be embedded in other sites.
 *
 * Static files go compressed when the browser accepts it: the build writes
 * `<file>.br` and `<file>.gz` beside each text file (scripts/build.mjs), and
 * the brotli copy, else the gzip one, is sent with `Content-Encoding` and
 * `Vary: Accept-Encoding` (nothing is compressed per request: the CPU a
 * request may cost stays small; a copy is checked once to hold the file as
 * it is now, and files are hashed and checked a piece at a time, once for
 * all the requests that come meanwhile). Every file has a strong ETag (a hash of its
 * content, one per encoding); `If-None-Match` gets 304. Vite's hashed assets
 * (`/assets/name-HASH.ext`) are cached for a year as immutable; everything
 * else (`/weft.js`, `/weft.mjs`, the page, whose names stay the same from
 * one build to the next) is `no-cache`: revalidated each time, 304 when unchanged.
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { extname, join, resolve, sep } from 'node:path'
import type { Readable } from 'node:stream'
import { createBrotliDecompress, createGunzip } from 'node:zlib'

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.cjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.woff2': 'font/woff2',
}

export function contentTypeOf(path: string): string {
  return CONTENT_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream'
}

const NOT_BUILT = `<!doctype html>
<meta charset="utf-8">
<title>weft signal server</title>
<h1>weft signal server</h1>
<p>The signal server is running, but the demo page is not built.</p>
<p>Build it with <code>npm run build</code> (it writes <code>dist/web</code>), then start again with
<code>npm start</code>. <a href="/healthz">/healthz</a> and <a href="/metrics">/metrics</a> work already.</p>
`

export interface HttpDeps {
  staticDir: string | undefined
  /** Where the bundles (BUNDLE_FILES) come from when staticDir has none. */
  bundleDir?: string | undefined
  health(): { status: number; body: Record<string, unknown> }
  prometheus(): string
}

/** A `request` listener for node:http. Never throws. */
export function createHttpHandler(deps: HttpDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const root = deps.staticDir === undefined ? undefined : resolve(deps.staticDir)
  const bundleRoot = deps.bundleDir === undefined ? undefined : resolve(deps.bundleDir)
  // Rendering walks every socket and network, and anyone may ask, as often as they like: one rendering
  // answers every request of the next METRICS_MIN_INTERVAL_MS (a scrape now and then is always fresh).
  let rendered = { at: Number.NEGATIVE_INFINITY, text: '' }
  const metrics = (): string => {
    const now = Date.now()
    if (now - rendered.at >= METRICS_MIN_INTERVAL_MS || now < rendered.at)
      rendered = { at: now, text: deps.prometheus() }
    return rendered.text
  }
  return (req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n')
      else res.destroy()
    })
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('Access-Control-Allow-Origin', '*')
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Methods', 'GET, HEAD, OPTIONS')
      res.setHeader('Access-Control-Allow-Headers', '*')
      res.writeHead(204).end()
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD, OPTIONS')
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n')
      return
    }
    let pathname: string
    try {
      pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
    } catch {
      send(res, 400, 'text/plain; charset=utf-8', 'bad request\n')
      return
    }
    if (pathname === '/healthz') {
      const { status, body } = deps.health()
      res.setHeader('Cache-Control', 'no-store')
      send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(body)}\n`, req.method === 'HEAD')
      return
    }
    if (pathname === '/metrics') {
      res.setHeader('Cache-Control', 'no-store')
      send(res, 200, 'text/plain; version=0.0.4; charset=utf-8', metrics(), req.method === 'HEAD')
      return
    }
    const file =
      (root === undefined ? undefined : await findFile(root, pathname)) ??
      (bundleRoot !== undefined && BUNDLE_FILES.test(pathname)
        ? await findFile(bundleRoot, pathname)
        : undefined)
    if (file) {
      const rep = await chooseRepresentation(file, req.headers['accept-encoding'])
      res.setHeader('Content-Type', contentTypeOf(file.path))
      res.setHeader(
        'Cache-Control',
        IMMUTABLE.test(pathname) ? 'public, max-age=31536000, immutable' : 'no-cache',
      )
      res.setHeader('X-Content-Type-Options', 'nosniff')
      res.setHeader('ETag', rep.etag)
      if (rep.vary) res.setHeader('Vary', 'Accept-Encoding')
      if (matchesEtag(req.headers['if-none-match'], rep.etag)) {
        res.writeHead(304).end()
        return
      }
      if (rep.encoding) res.setHeader('Content-Encoding', rep.encoding)
      res.setHeader('Content-Length', rep.size)
      res.writeHead(200)
      if (req.method === 'HEAD') {
        res.end()
        return
      }
      const stream = createReadStream(rep.path)
      stream.on('error', () => res.destroy())
      stream.pipe(res)
      return
    }
    if (pathname === '/' || pathname === '/index.html') {
      send(res, 200, 'text/html; charset=utf-8', NOT_BUILT, req.method === 'HEAD')
      return
    }
    send(res, 404, 'text/plain; charset=utf-8', 'not found\n', req.method === 'HEAD')
  }
}

/** How long one rendering of /metrics answers for: at most ten renderings a second, whatever comes. */
const METRICS_MIN_INTERVAL_MS = 100

/** A path segment that starts with a dot, other than `.well-known` (RFC 8615). */
const HIDDEN = /[\\/]\.(?!well-known(?:[\\/]|$))/

/** weft's bundles and their source maps: served from bundleDir when the static folder (an app's) has none. */
const BUNDLE_FILES = /^\/weft\.m?js(\.map)?$/

/** Vite's content-hashed output (assetsDir `assets`): a new build gives new names, so these never change. */
const IMMUTABLE = /^\/assets\/[^/]+-[A-Za-z0-9_-]{8,}\.[a-z0-9]+$/

interface StaticFile {
  path: string
  size: number
  mtimeMs: number
}

/** What goes out for one request: the file or one of its precompressed copies. */
interface Representation {
  path: string
  size: number
  etag: string
  encoding: 'br' | 'gzip' | undefined
  /** The answer depends on Accept-Encoding (a compressed copy exists). */
  vary: boolean
}

/** Content hashes by path, recomputed when size or mtime change; bounded (a static folder is small). */
const hashes = new Map<string, { size: number; mtimeMs: number; hash: string }>()
const MAX_HASHES = 1024

/**
 * Hashes and checks under way, by path, size and time: requests that come while one runs wait for it.
 * Without, every request for a file no one had asked for yet read it whole (48 at once for a 16 MiB
 * file: 750 MiB held).
 */
const running = new Map<string, Promise<unknown>>()

function once<T>(key: string, work: () => Promise<T>): Promise<T> {
  let p = running.get(key) as Promise<T> | undefined
  if (!p) {
    p = work().finally(() => running.delete(key))
    running.set(key, p)
  }
  return p
}

/** SHA-256 of what `stream` gives (base64url, 22 characters), read a piece at a time; undefined past `max` bytes. */
async function hashOf(stream: Readable, max = Number.POSITIVE_INFINITY): Promise<string | undefined> {
  const h = createHash('sha256')
  let n = 0
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      n += chunk.length
      if (n > max) return undefined
      h.update(chunk)
    }
  } finally {
    stream.destroy()
  }
  return h.digest('base64url').slice(0, 22)
}

async function contentHash(f: StaticFile): Promise<string> {
  const known = hashes.get(f.path)
  if (known && known.size === f.size && known.mtimeMs === f.mtimeMs) return known.hash
  return once(`${f.path}\0${f.size}\0${f.mtimeMs}`, async () => {
    const hash = (await hashOf(createReadStream(f.path))) as string
    if (hashes.size >= MAX_HASHES) hashes.delete(hashes.keys().next().value as string)
    hashes.set(f.path, { size: f.size, mtimeMs: f.mtimeMs, hash })
    return hash
  })
}

/** The encodings a client accepts (q > 0), from its Accept-Encoding header. */
function acceptedEncodings(header: string | string[] | undefined): Set<string> {
  const out = new Set<string>()
  const value = Array.isArray(header) ? header.join(',') : (header ?? '')
  for (const part of value.slice(0, 1024).split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';')
    const q = params.map((p) => /^\s*q=([0-9.]+)\s*$/.exec(p)?.[1]).find((x) => x !== undefined)
    if (name && (q === undefined || Number(q) > 0)) out.add(name)
  }
  return out
}

/** Precompressed copies checked so far: path -> its size and mtime then, and whether it holds the file. */
const copies = new Map<string, { size: number; mtimeMs: number; of: string; good: boolean }>()
/** A copy bigger than this is not looked into (a static folder holds bundles of a few hundred KB). */
const MAX_COPY_BYTES = 16 * 1024 * 1024

/**
 * The build's compressed copy of `f` (`ext` .br or .gz), if there is one and it decompresses to the
 * file as it is now (content hash `hash`): a copy left over from an older build is not sent. Checked
 * once per copy (and again when it changes). File times say nothing here: npm sets one time on every
 * file of a package.
 */
async function compressedCopy(
  f: StaticFile,
  ext: '.br' | '.gz',
  hash: string,
): Promise<StaticFile | undefined> {
  const path = f.path + ext
  let s: Awaited<ReturnType<typeof stat>>
  try {
    s = await stat(path)
  } catch {
    return undefined
  }
  if (!s.isFile() || s.size > MAX_COPY_BYTES) return undefined
  const known = copies.get(path)
  let good: boolean
  if (known && known.size === s.size && known.mtimeMs === s.mtimeMs && known.of === hash) good = known.good
  else
    good = await once(`${path}\0${s.size}\0${s.mtimeMs}\0${hash}`, async () => {
      let ok: boolean
      try {
        // Decompressed a piece at a time, and no further than the file's size: a copy that holds more is not it.
        const source = createReadStream(path)
        const body = ext === '.br' ? createBrotliDecompress() : createGunzip()
        source.on('error', (err) => body.destroy(err))
        ok = (await hashOf(source.pipe(body), f.size).finally(() => source.destroy())) === hash
      } catch {
        ok = false
      }
      if (copies.size >= MAX_HASHES) copies.delete(copies.keys().next().value as string)
      copies.set(path, { size: s.size, mtimeMs: s.mtimeMs, of: hash, good: ok })
      return ok
    })
  return good ? { path, size: s.size, mtimeMs: s.mtimeMs } : undefined
}

async function chooseRepresentation(
  f: StaticFile,
  acceptEncoding: string | string[] | undefined,
): Promise<Representation> {
  const hash = await contentHash(f)
  const accepted = acceptedEncodings(acceptEncoding)
  const br = await compressedCopy(f, '.br', hash)
  const gz = await compressedCopy(f, '.gz', hash)
  const vary = br !== undefined || gz !== undefined
  if (br && accepted.has('br')) return { ...br, etag: `"${hash}-br"`, encoding: 'br', vary }
  if (gz && (accepted.has('gzip') || accepted.has('x-gzip')))
    return { ...gz, etag: `"${hash}-gz"`, encoding: 'gzip', vary }
  return { path: f.path, size: f.size, etag: `"${hash}"`, encoding: undefined, vary }
}

/** If-None-Match against our (strong) ETag; weak comparison, as RFC 9110 asks for it. */
function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false
  if (header.trim() === '*') return true
  return header
    .slice(0, 4096)
    .split(',')
    .some((t) => t.trim().replace(/^W\//, '') === etag)
}

async function findFile(root: string, pathname: string): Promise<StaticFile | undefined> {
  if (pathname.includes('\0')) return undefined
  const rel = pathname === '/' ? 'index.html' : pathname.replace(/^\/+/, '')
  const path = resolve(join(root, rel))
  if (path !== root && !path.startsWith(root + sep)) return undefined
  // Hidden files and folders (.env, .git, .htpasswd) are never served, only /.well-known/: a folder given
  // by mistake (a project's rather than its build output) does not give its secrets away.
  if (HIDDEN.test(path.slice(root.length))) return undefined
  try {
    const s = await stat(path)
    if (s.isFile()) return { path, size: s.size, mtimeMs: s.mtimeMs }
    if (s.isDirectory()) {
      const index = join(path, 'index.html')
      const si = await stat(index)
      if (si.isFile()) return { path: index, size: si.size, mtimeMs: si.mtimeMs }
    }
  } catch {
    // missing: fall through
  }
  return undefined
}

function send(res: ServerResponse, status: number, type: string, body: string, headOnly = false): void {
  res.setHeader('Content-Type', type)
  res.setHeader('Content-Length', Buffer.byteLength(body))
  res.writeHead(status)
  res.end(headOnly ? undefined : body)
}
