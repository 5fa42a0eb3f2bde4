/**
 * Where a Node process keeps its identity: in memory (a new id per run), or
 * in a folder as PKCS#8 (`dataDir`), so an always-on peer keeps its id.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { exportIdentity, generateIdentity, type Identity, importIdentity } from '../shared/identity/keys.ts'

export async function loadNodeIdentity(dataDir?: string): Promise<Identity> {
  if (!dataDir) return generateIdentity({ extractable: true })
  await mkdir(dataDir, { recursive: true })
  const file = join(dataDir, 'identity.pkcs8')
  try {
    return await importIdentity(new Uint8Array(await readFile(file)))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const id = await generateIdentity({ extractable: true })
  const tmp = `${file}.tmp`
  await writeFile(tmp, await exportIdentity(id), { mode: 0o600 })
  await rename(tmp, file)
  return id
}
