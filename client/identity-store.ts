/**
 * Where a Node process keeps its identity: in memory (a new id per run), or
 * in a folder as PKCS#8 (`dataDir`), so an always-on peer keeps its id.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { exportIdentity, generateIdentity, type Identity, importIdentity } from '../shared/identity/keys.ts'
import { meetsPuzzle } from '../shared/identity/puzzle.ts'

export async function loadNodeIdentity(dataDir: string | undefined, puzzleBits: number): Promise<Identity> {
  if (!dataDir) return generateIdentity({ extractable: true, puzzleBits })
  await mkdir(dataDir, { recursive: true })
  const file = join(dataDir, 'identity.pkcs8')
  try {
    const saved = await importIdentity(new Uint8Array(await readFile(file)))
    // A key made before the network asked for this much work is replaced (once).
    if (meetsPuzzle(saved.publicKey, puzzleBits)) return saved
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const id = await generateIdentity({ extractable: true, puzzleBits })
  const tmp = `${file}.tmp`
  await writeFile(tmp, await exportIdentity(id), { mode: 0o600 })
  await rename(tmp, file)
  return id
}
