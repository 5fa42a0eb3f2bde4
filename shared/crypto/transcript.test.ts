import { describe, expect, it } from 'vitest'
import { toHex } from '../bytes.ts'
import { type LinkEnd, type LinkTranscriptInput, linkProofBytes, linkTranscript } from './transcript.ts'

const rnd = (n: number) => crypto.getRandomValues(new Uint8Array(n))
const end = (id: string, fingerprint = ''): LinkEnd => ({
  id,
  nonce: rnd(32),
  ephemeral: rnd(32),
  fingerprint,
})

describe('link transcript', () => {
  const a = end('0'.repeat(40), 'sha-256 AA:BB')
  const b = end('9'.repeat(40), 'sha-256 CC:DD')
  const base: LinkTranscriptInput = { transport: 'webrtc', network: 'demo', ends: [a, b] }

  it('is the same whichever end computes it', async () => {
    expect(toHex(await linkTranscript(base))).toBe(toHex(await linkTranscript({ ...base, ends: [b, a] })))
  })

  it('changes with every field: transport, network, and each end’s id, nonce, ephemeral key and fingerprint', async () => {
    const th = toHex(await linkTranscript(base))
    const variants: LinkTranscriptInput[] = [
      { ...base, transport: 'relay' },
      { ...base, network: 'demo2' },
      { ...base, ends: [{ ...a, id: '1'.repeat(40) }, b] },
      { ...base, ends: [{ ...a, nonce: rnd(32) }, b] },
      { ...base, ends: [a, { ...b, ephemeral: rnd(32) }] },
      { ...base, ends: [a, { ...b, fingerprint: 'sha-256 CC:DE' }] },
      // Moving bytes between adjacent fields is a different transcript too (length prefixes).
      { ...base, transport: 'webrtcd', network: 'emo' },
    ]
    const seen = new Set([th])
    for (const v of variants) seen.add(toHex(await linkTranscript(v)))
    expect(seen.size).toBe(variants.length + 1)
  })

  it('refuses what a validated hello could not hold', async () => {
    await expect(linkTranscript({ ...base, ends: [a, { ...b, id: a.id }] })).rejects.toThrow(RangeError)
    await expect(linkTranscript({ ...base, ends: [a, { ...b, nonce: rnd(31) }] })).rejects.toThrow(RangeError)
    await expect(linkTranscript({ ...base, ends: [a, { ...b, ephemeral: rnd(33) }] })).rejects.toThrow(
      RangeError,
    )
    await expect(linkTranscript({ ...base, ends: [a, { ...b, id: 'B'.repeat(40) }] })).rejects.toThrow(
      RangeError,
    )
  })

  it('proof bytes name the signer', async () => {
    const th = await linkTranscript(base)
    expect(toHex(linkProofBytes(th, a.id))).not.toBe(toHex(linkProofBytes(th, b.id)))
  })
})
