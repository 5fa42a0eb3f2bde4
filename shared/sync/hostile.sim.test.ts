/**
 * Hostile authors in the simulator (issue 9): a node that tries to take a
 * lease by back-dating its claim, and a node that fills the table with the
 * entries of many generated identities. Every other node runs the real table
 * over the real mesh; the attacker signs what it likes with keys it holds and
 * hands it out by broadcast (and, for the claim, by anti-entropy).
 */
import { describe, expect, it } from 'vitest'
import { testSeed, withSeed } from '../../test/seed.ts'
import { scopedKeyring } from '../identity/keys.ts'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import { mulberry32, shuffle } from '../sim/prng.ts'
import type { Value } from '../types.ts'
import { encodeValue } from '../wire/value.ts'
import { encodeBody, signedBytes } from './entry.ts'
import type { PutMsg } from './messages.ts'
import { createSyncNet, type SyncNet } from './sim-net.ts'
import { SYNC_TOPIC, type SyncOptions } from './sync.ts'

const AE_MS = 1_000
const SYNC: SyncOptions = { antiEntropyMs: AE_MS, leaseGraceMs: 2_000, contentionWindowMs: 2 * AE_MS }
const LEASE = 30_000
const TEN_MIN = 600_000

/** A put signed by `author` with any fields (the attacker's own key: the signature is valid). */
async function craft(
  author: string,
  key: string,
  wall: number,
  value: Value,
  leaseMs: number,
  heldMs = 0,
): Promise<PutMsg> {
  // In the (unnamed) network's scope, as a node's core signs.
  const keys = scopedKeyring(createFakeKeyring(author), '')
  const body = encodeBody(key, [wall, 0], leaseMs, encodeValue(value), heldMs)
  return { t: 'p', e: [body, keys.publicKey, await keys.sign(signedBytes(body))] }
}

/**
 * An honest node takes a lease; 0.8 s later (by its clock) `thief` claims
 * the key with an acquisition dated 1 ms before the owner's, two ways (a
 * fresh write carrying a back-dated `since`, and a write back-dated
 * outright), broadcasts both, and keeps them in its own replica so that its
 * anti-entropy offers them to its neighbours too.
 */
async function theft(seed: number, sync: SyncOptions) {
  const net = await createSyncNet({ seed, n: 64, degree: 6, clockSkewMs: 100, sync: { ...SYNC, ...sync } })
  const { sim, ids } = net
  await sim.runFor(1_000)
  const [owner, thief] = shuffle(mulberry32(seed), [...ids]) as [string, string]
  await net.set(owner, 'door', 'owner', { leaseMs: LEASE })
  const since = (net.sync(owner).lease('door')?.expires as number) - LEASE
  await sim.runFor(800)
  const now = net.clock(thief)
  const claims = [
    await craft(thief, 'door', now, 'thief', TEN_MIN, now - (since - 1)),
    await craft(thief, 'door', since - 1, 'thief', TEN_MIN),
  ]
  for (const m of claims) await net.node(thief).mesh?.broadcast(SYNC_TOPIC, m)
  await net.sync(thief).importState({ v: 1, at: now, e: claims.map((m) => m.e) })
  await sim.runFor(4 * AE_MS)
  const honest = ids.filter((id) => id !== thief)
  return { net, owner, thief, honest }
}

const sum = (net: SyncNet, ids: string[], counter: string) =>
  ids.reduce((s, id) => s + (net.sync(id).counters[counter] ?? 0), 0)

describe('sync: hostile authors in the simulator', () => {
  it('lease theft: a claim back-dated before the acquisition and sent 0.8 s after it leaves the owner holding the lease on every replica', async () => {
    const seed = testSeed(90)
    await withSeed(seed, async () => {
      const { net, owner, thief, honest } = await theft(seed, {})
      for (const id of honest) {
        expect(net.sync(id).owner('door'), id).toBe(owner)
        expect(net.sync(id).get('door')).toBe('owner')
        // Both claims came by broadcast to every one of them and were refused.
        expect(net.sync(id).counters['drop.lateClaim'] ?? 0).toBeGreaterThanOrEqual(2)
      }
      expect(sum(net, honest, 'contention.preempted')).toBe(0)
      // The thief's neighbours were offered its claim by anti-entropy as well, and refused it again.
      const near = net.sim.liveNeighbours(thief)
      expect(sum(net, near, 'drop.lateClaim')).toBeGreaterThan(2 * near.length)
      expect(net.sync(thief).owner('door')).toBe(thief)
      // The owner writes on, and every honest replica holds the same table.
      await net.set(owner, 'door', 'owner again')
      await net.sim.runFor(2 * AE_MS)
      for (const id of honest) expect(net.sync(id).get('door')).toBe('owner again')
      expect(new Set(honest.map((id) => net.sync(id).digest())).size).toBe(1)
    })
  })

  it('control: crediting claims as late as the contention window (the old rule) lets the same thief take the lease', async () => {
    const seed = testSeed(90)
    await withSeed(seed, async () => {
      const { net, thief, honest } = await theft(seed, { claimSkewMs: 2 * AE_MS })
      expect(honest.filter((id) => net.sync(id).owner('door') === thief).length).toBeGreaterThan(
        honest.length / 2,
      )
    })
  })

  /** The table's bounds at 1/25 of the defaults (same ratios: ten authors fill it), so the runs stay short. */
  const MAX = 400
  const QUOTA = 40
  const SHARES: SyncOptions = {
    ...SYNC,
    maxEntries: MAX,
    perAuthorQuota: QUOTA,
    maxTableBytes: 1_342_177,
    perAuthorBytes: 167_772,
  }

  for (const hostile of [11, 50])
    it(`sybil: after ${hostile} generated identities fill what they can, an honest newcomer still writes and every replica gets its writes`, async () => {
      const seed = testSeed(100 + hostile)
      await withSeed(seed, async () => {
        const net = await createSyncNet({ seed, n: 20, degree: 5, sync: SHARES })
        const { sim, ids } = net
        await sim.runFor(1_000)
        const [attacker, newcomer, early] = shuffle(mulberry32(seed), [...ids]) as [string, string, string]
        // An honest author that wrote before the attack.
        for (let i = 0; i < 5; i++) await net.set(early, `early/${i}`, i)
        await sim.runFor(1_000)
        // The attacker broadcasts, for each identity, as many entries as its quota allows.
        const mesh = net.node(attacker).mesh
        let sent = 0
        for (let s = 0; s < hostile; s++) {
          const sybil = sim.randomId()
          for (let j = 0; j < QUOTA; j++) {
            const m = await craft(sybil, `spam/${s}/${j}`, net.clock(attacker), { j, pad: 'x'.repeat(64) }, 0)
            await mesh?.broadcast(SYNC_TOPIC, m)
            if (++sent % 50 === 0) await sim.runFor(100)
          }
        }
        await sim.runFor(3 * AE_MS)
        for (const id of ids) {
          const size = net.sync(id).size()
          expect(size.entries, id).toBeLessThanOrEqual(MAX)
          if (id !== attacker) expect(size.entries, id).toBe(MAX)
        }
        // The identities past the first ten took room from one another, not from the early author.
        expect(sum(net, ids, 'evicted')).toBeGreaterThan(0)
        for (const id of ids) for (let i = 0; i < 5; i++) expect(net.sync(id).get(`early/${i}`)).toBe(i)
        // The newcomer writes until the table refuses it: it gets an equal share of what the early
        // author leaves (an identity's share, less the one it would take from the largest), and every
        // replica gets every write.
        const share = Math.floor((MAX - 5) / (hostile + 2))
        let written = 0
        for (; written < QUOTA; written++) {
          const err = await net.set(newcomer, `new/${written}`, { i: written }).catch((e: Error) => e)
          if (err) {
            expect(err).toMatchObject({ name: 'QuotaExceededError', limit: 'tableEntries' })
            break
          }
        }
        expect(written).toBeGreaterThanOrEqual(Math.min(QUOTA, share - 1))
        await sim.runFor(3 * AE_MS)
        for (const id of ids) {
          for (let i = 0; i < written; i++) expect(net.sync(id).get(`new/${i}`), id).toEqual({ i })
          expect(net.sync(id).size().entries).toBe(MAX)
        }
        expect(net.converged()).toBe(true)
      })
    })
})
