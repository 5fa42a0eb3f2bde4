/**
 * bundle: gzip size of the embeddable bundles (run `npm run build` first;
 * this runs it when dist/web is missing), and of the files engine each
 * loads on the first use of `node.files`: weft-files.mjs (a chunk of
 * weft.mjs) and weft-files-all.mjs (self-contained, for weft.js).
 *
 *   npm run bench -- bundle
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { isMain, report } from './report.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

export async function run(): Promise<Record<string, number>> {
  const js = join(root, 'dist/web/weft.js')
  if (!existsSync(js)) execFileSync(process.execPath, [join(root, 'scripts/build.mjs')], { stdio: 'inherit' })
  const size = (f: string) => {
    const b = readFileSync(join(root, 'dist/web', f))
    return { raw: b.length, gzip: gzipSync(b, { level: 9 }).length }
  }
  const iife = size('weft.js')
  const esm = size('weft.mjs')
  const figures = {
    gzipBytes: iife.gzip,
    rawBytes: iife.raw,
    esmGzipBytes: esm.gzip,
    filesChunkGzipBytes: size('weft-files.mjs').gzip,
    filesAllGzipBytes: size('weft-files-all.mjs').gzip,
    goalGzipBytes: 75 * 1024,
  }
  report('bundle', figures)
  return figures
}

if (isMain(import.meta.url)) await run()
