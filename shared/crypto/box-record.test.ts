import { describe, expect, it } from 'vitest'
import { generateIdentity, type Identity, type Keyring } from '../identity/keys.ts'
import type { Value } from '../types.ts'
import { decodeValue, encodeValue } from '../wire/value.ts'
import {
  BOX_RECORD_MAX_AGE_MS,
  type BoxRecord,
  boxRecordValue,
  createBoxDirectory,
  createBoxKeyPair,
  parseBoxRecord,
  signBoxRecord,
  verifyBoxRecord,
} from './box-record.ts'

const NOW = 1_700_000_000_000

async function signed(identity?: Identity, at = NOW): Promise<{ id: Identity; record: BoxRecord }> {
  const id = identity ?? (await generateIdentity({ puzzleBits: 0 }))
  const box = await createBoxKeyPair()
  return { id, record: await signBoxRecord(id, box.publicKey, at) }
}

/** A keyring that counts signature checks. */
function countingKeys(keys: Keyring): { keys: Pick<Keyring, 'verify' | 'idOf'>; verifies: () => number } {
  let n = 0
  return {
    keys: {
      verify: (pk, data, sig) => {
        n++
        return keys.verify(pk, data, sig)
      },
      idOf: keys.idOf,
    },
    verifies: () => n,
  }
}

describe('box records', () => {
  it('a signed record verifies, and survives the wire (encodeValue/decodeValue, parseBoxRecord)', async () => {
    const { id, record } = await signed()
    expect(await verifyBoxRecord(record, id, { now: NOW, id: id.id })).toBe('ok')
    const wire = decodeValue(encodeValue(boxRecordValue(record)))
    const back = parseBoxRecord(wire)
    if (!back) throw new Error('did not parse')
    expect(await verifyBoxRecord(back, id, { now: NOW + 1000, id: id.id })).toBe('ok')
  })

  it('refuses a record changed in any field, signed by another key, or claimed for another node', async () => {
    const { id, record } = await signed()
    const other = await signed()
    const opts = { now: NOW, id: id.id }
    expect(await verifyBoxRecord({ ...record, boxKey: other.record.boxKey }, id, opts)).toBe('forged')
    expect(await verifyBoxRecord({ ...record, issuedAt: NOW - 1 }, id, opts)).toBe('forged')
    expect(await verifyBoxRecord({ ...record, sig: other.record.sig }, id, opts)).toBe('forged')
    // Another node's key with this node's record: the key does not hash to the id.
    expect(await verifyBoxRecord({ ...record, publicKey: other.id.publicKey }, id, opts)).toBe('wrong-id')
    expect(await verifyBoxRecord(record, id, { now: NOW, id: other.id.id })).toBe('wrong-id')
  })

  it('refuses records dated too far ahead or too old, and small-order box keys', async () => {
    const { id, record } = await signed()
    expect(await verifyBoxRecord(record, id, { now: NOW - 61_000 })).toBe('future')
    expect(await verifyBoxRecord(record, id, { now: NOW - 59_000 })).toBe('ok')
    expect(await verifyBoxRecord(record, id, { now: NOW + BOX_RECORD_MAX_AGE_MS + 1 })).toBe('expired')
    expect(await verifyBoxRecord(record, id, { now: NOW + 1000, maxAgeMs: 999 })).toBe('expired')
    expect(await verifyBoxRecord({ ...record, boxKey: new Uint8Array(32) }, id, { now: NOW })).toBe(
      'malformed',
    )
  })

  it('the keyring decides: a key the network refuses (say, below its puzzle) makes the record forged', async () => {
    const { id, record } = await signed()
    const refusing = { verify: async () => false, idOf: id.idOf }
    expect(await verifyBoxRecord(record, refusing, { now: NOW })).toBe('forged')
  })

  it('parseBoxRecord refuses malformed wire forms', async () => {
    const { record } = await signed()
    const v = boxRecordValue(record) as Record<string, Value>
    const cases: Value[] = [
      null,
      'x',
      [],
      { ...v, x: new Uint8Array(31) },
      { ...v, x: new Uint8Array(32) }, // small order
      { ...v, pk: new Uint8Array(32) }, // not an Ed25519 key we accept
      { ...v, at: -1 },
      { ...v, at: 1.5 },
      { ...v, at: '1' },
      { ...v, sig: new Uint8Array(63) },
      { x: v.x ?? null, pk: v.pk ?? null, at: v.at ?? null },
    ]
    for (const c of cases) expect(parseBoxRecord(c)).toBeNull()
    expect(parseBoxRecord(v)).not.toBeNull()
  })
})

describe('box directory', () => {
  it('keeps the newest verified record per node; an older one replayed later is stale', async () => {
    const id = await generateIdentity({ puzzleBits: 0 })
    const { keys, verifies } = countingKeys(id)
    const dir = createBoxDirectory({ keys })
    const old = await signed(id, NOW - 10_000)
    const fresh = await signed(id, NOW)
    expect(await dir.learn(id.id, old.record, NOW)).toBe('ok')
    expect(await dir.learn(id.id, fresh.record, NOW)).toBe('ok')
    expect(dir.get(id.id)?.issuedAt).toBe(NOW)
    expect(await dir.learn(id.id, old.record, NOW)).toBe('stale')
    expect(dir.get(id.id)?.issuedAt).toBe(NOW)
    expect(dir.counters['box.stale']).toBe(1)
    // The same record again costs no signature check.
    const before = verifies()
    expect(await dir.learn(id.id, fresh.record, NOW)).toBe('ok')
    expect(verifies()).toBe(before)
  })

  it('refuses and counts forged, foreign and future records; holds nothing for them', async () => {
    const a = await generateIdentity({ puzzleBits: 0 })
    const b = await signed()
    const dir = createBoxDirectory({ keys: a })
    expect(await dir.learn(a.id, b.record, NOW)).toBe('wrong-id')
    const mine = await signed(a)
    expect(await dir.learn(a.id, { ...mine.record, sig: b.record.sig }, NOW)).toBe('forged')
    expect(await dir.learn(a.id, mine.record, NOW - 120_000)).toBe('future')
    expect(dir.get(a.id)).toBeUndefined()
    expect(dir.counters).toMatchObject({ 'drop.box.wrong-id': 1, 'drop.box.forged': 1, 'drop.box.future': 1 })
  })

  it('is bounded (least recently used go first) and forgets expired records on tick', async () => {
    const ids = await Promise.all(Array.from({ length: 6 }, () => generateIdentity({ puzzleBits: 0 })))
    const dir = createBoxDirectory({ keys: ids[0] as Identity }, { maxEntries: 4, maxAgeMs: 1000 })
    for (const id of ids) expect(await dir.learn(id.id, (await signed(id)).record, NOW)).toBe('ok')
    expect(dir.size).toBe(4)
    expect(dir.get((ids[0] as Identity).id)).toBeUndefined()
    expect(dir.get((ids[5] as Identity).id)).toBeDefined()
    dir.tick(NOW + 500)
    expect(dir.size).toBe(4)
    dir.tick(NOW + 1001)
    expect(dir.size).toBe(0)
  })
})
