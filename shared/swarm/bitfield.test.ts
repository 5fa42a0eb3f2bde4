import { describe, expect, it } from 'vitest'
import { Bitfield } from './bitfield.ts'

describe('Bitfield', () => {
  it('piece 0 is the high bit of byte 0; counts set bits', () => {
    const b = new Bitfield(10)
    expect(b.bytes.length).toBe(2)
    expect(b.set(0)).toBe(true)
    expect(b.set(0)).toBe(false)
    b.set(9)
    expect([...b.bytes]).toEqual([0b1000_0000, 0b0100_0000])
    expect(b.count).toBe(2)
    expect([...b.indices()]).toEqual([0, 9])
    expect(b.clear(0)).toBe(true)
    expect(b.clear(0)).toBe(false)
    expect(b.has(9) && !b.has(0) && !b.has(10) && !b.has(-1)).toBe(true)
    expect(b.set(10)).toBe(false)
    for (let i = 0; i < 10; i++) b.set(i)
    expect(b.complete).toBe(true)
  })

  it('from() refuses a wrong length or a spare bit set, and copies', () => {
    expect(Bitfield.from(new Uint8Array([0xff]), 10)).toBeNull()
    expect(Bitfield.from(new Uint8Array([0xff, 0xff, 0]), 10)).toBeNull()
    expect(Bitfield.from(new Uint8Array([0xff, 0b0010_0000]), 10)).toBeNull()
    const src = new Uint8Array([0xff, 0b1100_0000])
    const b = Bitfield.from(src, 10) as Bitfield
    expect(b.complete).toBe(true)
    src[0] = 0
    expect(b.count).toBe(10)
    expect(Bitfield.from(new Uint8Array(0), 0)?.complete).toBe(true)
  })
})
