/**
 * The README's "API by example" is the code that test/api/readme-example.ts
 * compiles under strict (npm run typecheck): the two must not drift apart.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { expect, it } from 'vitest'

const root = join(import.meta.dirname, '..')

it("the README's API example is the one the typecheck compiles", () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const at = readme.indexOf('## The API by example\n\n```ts\n')
  expect(at).toBeGreaterThan(0)
  const block = readme.slice(readme.indexOf('```ts\n', at) + 6, readme.indexOf('```\n', at + 30))
  // The README's block opens with the import from 'weft' and the script-tag alternative.
  const body = block.slice(block.indexOf('\n\n') + 2)
  const compiled = readFileSync(join(root, 'test/api/readme-example.ts'), 'utf8')
  const begin = '// --- README example begins\n'
  const region = compiled.slice(
    compiled.indexOf(begin) + begin.length,
    compiled.indexOf('// --- README example ends'),
  )
  expect(body).toBe(region)
  expect(block).toContain("from 'weft'")
})
