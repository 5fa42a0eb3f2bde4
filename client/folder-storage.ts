/** NodeStorage in a folder: one MessagePack file per name, written atomically. */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { decodeValueResult, encodeValue } from '../shared/wire/value.ts'
import type { NodeStorage } from './storage.ts'

export function folderStorage(dir: string, prefix: string): NodeStorage {
  const file = (name: string) => join(dir, `${prefix}${name.replace(/[^A-Za-z0-9._-]/g, '_')}.msgpack`)
  let chain: Promise<void> = Promise.resolve()
  return {
    async load(name) {
      try {
        return decodeValueResult(new Uint8Array(await readFile(file(name))))?.value
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
        throw err
      }
    },
    save(name, v) {
      // Writes of one storage are serialised, so an older snapshot never lands after a newer one.
      chain = chain.then(async () => {
        await mkdir(dir, { recursive: true })
        const tmp = `${file(name)}.tmp`
        await writeFile(tmp, encodeValue(v))
        await rename(tmp, file(name))
      })
      return chain
    },
  }
}
