/** testing/README.md's example is node/example.test.ts, which runs: the two must not drift apart. */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { expect, it } from 'vitest'

it("the README's weft/testing example is example.test.ts", () => {
  const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8')
  const at = readme.indexOf('## weft/testing (Node)')
  expect(at).toBeGreaterThan(0)
  const start = readme.indexOf('```ts\n', at) + 6
  const block = readme.slice(start, readme.indexOf('```\n', start))
  const example = readFileSync(join(import.meta.dirname, 'example.test.ts'), 'utf8')
  // The file's first line says what it is; the rest is the README's block.
  expect(block).toBe(example.slice(example.indexOf('\n') + 1))
  expect(block).toContain("from 'weft/testing'")
})
