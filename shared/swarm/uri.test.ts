import { describe, expect, it } from 'vitest'
import { fileUri, isFileId, parseFileRef } from './uri.ts'

const ID = 'ab'.repeat(32)

describe('weft: links', () => {
  it('round-trips id, name and size', () => {
    const uri = fileUri(ID, { name: 'my clip & co ü.webm', size: 16_777_216 })
    expect(uri).toBe(`weft:?xt=urn:weft:${ID}&dn=my%20clip%20%26%20co%20%C3%BC.webm&xl=16777216`)
    expect(parseFileRef(uri)).toEqual({ id: ID, name: 'my clip & co ü.webm', size: 16_777_216 })
    expect(parseFileRef(fileUri(ID))).toEqual({ id: ID })
  })

  it('takes a bare id in either case, surrounding spaces, upper-case scheme and hex, + for space, and ignores other magnet parameters', () => {
    expect(parseFileRef(ID.toUpperCase())).toEqual({ id: ID })
    expect(parseFileRef(`  weft:?xt=urn:weft:${ID}\n`)).toEqual({ id: ID })
    expect(parseFileRef(`WEFT:?xt=URN:WEFT:${ID.toUpperCase()}&dn=a+b`)).toEqual({ id: ID, name: 'a b' })
    expect(parseFileRef(`weft:?tr=udp%3A%2F%2Fx&xt=urn:weft:${ID}&ws=http://y`)).toEqual({ id: ID })
    expect(isFileId(ID)).toBe(true)
    expect(isFileId(ID.toUpperCase())).toBe(false)
  })

  it('refuses malformed links with a reason, never throwing', () => {
    const bad = [
      42,
      null,
      '',
      'magnet:?xt=urn:btih:abc',
      `weft:xt=urn:weft:${ID}`,
      'weft:?dn=x',
      `weft:?xt=urn:weft:${ID}&xt=urn:weft:${ID}`,
      `weft:?xt=urn:sha1:${ID}`,
      `weft:?xt=urn:weft:${ID.slice(2)}`,
      `weft:?xt=urn:weft:${ID}zz`,
      `weft:?xt=urn:weft:${ID}&xl=-5`,
      `weft:?xt=urn:weft:${ID}&xl=1e9`,
      `weft:?xt=urn:weft:${ID}&xl=99999999999999999`,
      `weft:?xt=urn:weft:${ID}&xl=1&xl=2`,
      `weft:?xt=urn:weft:${ID}&dn=a%2Fb`,
      `weft:?xt=urn:weft:${ID}&dn=a%00`,
      `weft:?xt=urn:weft:${ID}&dn=%E0%A4%A`,
      `weft:?xt=urn:weft:${ID}&dn=a&dn=b`,
      `weft:?xt=urn:weft:${ID}&junk`,
      `weft:?xt=urn:weft:${ID}${'&a=1'.repeat(16)}`,
      `weft:?xt=urn:weft:${ID}&dn=${'a'.repeat(3000)}`,
    ]
    for (const s of bad) {
      const r = parseFileRef(s)
      expect(typeof r, String(s)).toBe('string')
    }
  })
})
