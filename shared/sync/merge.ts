/**
 * The merge rules: which of two versions of a key a replica keeps.
 *
 * Merge. Last writer wins by (HLC, author id), then body and signature bytes
 * (entry.ts `compareEntries`), a total order, so replicas that hold the same
 * entries hold the same table whatever order they saw them in, except where
 * a lease decides.
 *
 * Leases. `set(key, value, { leaseMs })` makes the author the key's owner
 * until `expires = hlc.wall + leaseMs`: the author's own HLC wall time, its
 * clock. The rule, applied by every replica to its own copy:
 *
 *   While the entry a replica holds for a key has a lease, the replica
 *   refuses any write or delete by another author until its own clock reads
 *   `expires + leaseGraceMs`. A local call throws LeaseHeldError(owner,
 *   expires); a remote entry is dropped (`drop.leaseHeld`), and comes back
 *   through anti-entropy once the lease has ended, if it is still the newest.
 *
 * The guarantee, which the simulator's property test checks at every
 * acceptance: no replica ever accepts a non-owner's write over a lease it
 * holds before the owner's clock reads `expires`, provided the two clocks
 * differ by at most `leaseGraceMs`. (When the replica can take over, its
 * clock reads ≥ expires + grace, so the owner's reads ≥ expires.) Clocks
 * further apart shorten the lease as seen by the fast replica by the excess;
 * entries dated more than `maxSkewMs` ahead are refused outright, so a node
 * with a runaway clock cannot pin keys. A replica can only honour a lease it
 * has heard of: a node cut off from the owner may write, and the write is
 * refused by every replica that holds the lease and wins after expiry only
 * if it is still the newest version. The owner renews by writing again with
 * `leaseMs` (renew at least `antiEntropyMs` before expiry so replicas that
 * lost the broadcast hear of it); its writes without `leaseMs` keep the
 * current expiry, and `leaseMs: 0` releases the lease. A delete keeps the
 * owner's lease the same way (the key stays reserved while deleted).
 *
 * Contention. Two nodes that take a lease on a key at about the same time,
 * each before hearing of the other, both succeed locally; the lease rule
 * alone would then leave each replica with whichever it heard first for the
 * whole lease. So a leased entry also carries `since`, the time its author
 * took the lease: the HLC wall of the write that took it when the author
 * held no live lease on the key (by its own clock), kept by every renewal
 * and every write that carries the lease on; an entry without a lease has
 * `since = wall`. The claim of an entry is (`since`, author id), and the
 * earlier claim is the rightful one. The rule, applied by every replica to
 * every entry `e` by another author than the held entry `cur`, at its clock
 * `now`:
 *
 *   If `e`'s lease binds, was still running when `cur` was claimed
 *   (`e.expires > cur.since`), and claims earlier (`e.since < cur.since`;
 *   at equal times, `e`'s author id is lower, or `cur`'s lease does not
 *   bind), then `e` replaces `cur`, whatever their HLCs, provided `now <
 *   cur.since + contentionWindowMs` (counted `contention.preempted`). Past
 *   the window `cur` stands: if its lease binds, `e` is dropped
 *   (`drop.lateClaim`); if not, last writer wins.
 *
 * Everything else is as before: a live lease refuses later claims
 * (`drop.leaseHeld`), with or without a lease of their own. For two
 * contenders the outcome is then the same in both arrival orders: heard
 * first, the earlier claim refuses the later; heard second, it replaces it.
 * A lease likewise beats a write without lease that a node made after the
 * acquisition without having heard of it. So every replica that hears all
 * the contending acquisitions within the window (a broadcast, or an
 * anti-entropy round when the broadcast is lost: the default window is two
 * rounds) settles on one owner, the earliest. The losers' own replicas
 * switch too: their `owner(key)` names the winner, their onChange listeners
 * see its value, and their next write throws LeaseHeldError(winner,
 * expires). The winner's renewals keep its `since`, so they win even where
 * only a loser's lease had been heard.
 *
 * Claims: `since` judged on first sight. `since`, like the HLC, is whatever
 * its signer says: a node that has just seen a lease taken can claim an
 * acquisition a millisecond earlier, or backdate the whole entry. Read
 * literally, the rule above would hand it the lease. So a replica judges
 * every claim against its own clock the first time it sees it, and credits
 * the acquisition with
 *
 *   claim = max(since, first sight − claimSkewMs)
 *
 * (a version that continues the tenure of the version held, same author and
 * same `since`, keeps the claim that one was given; this node's own writes
 * and its own snapshot are credited in full). An entry pre-empts only if it
 * claims earlier both by `since` (the rule above, the same on every replica)
 * and as credited here (`e.claim ≤ cur.claim`); otherwise an earlier `since`
 * is a late claim, refused while the held lease binds (`drop.lateClaim`).
 * Hence: no claim first seen more than claimSkewMs after a lease's credited
 * acquisition pre-empts it, whatever time it names. A lease this replica has
 * held for claimSkewMs is safe from everyone but its owner. What remains is
 * a race: a claim that reaches a replica within claimSkewMs of the
 * acquisition it contests cannot be told from a concurrent one, and is
 * credited like one. (Author times ahead of the replica's clock are bounded
 * separately: `wall` by `maxSkewMs` (`drop.future`), `since ≤ wall`,
 * `expires ≤ wall + maxLeaseMs`.)
 *
 * The price. Honest contenders are resolved by `since` on every replica that
 * hears each of them within claimSkewMs of its `since`: the broadcast delay
 * plus the clock difference between author and replica (the default, 500
 * ms, assumes clocks within a few hundred ms). A replica that hears an
 * earlier acquisition later than that (lost broadcasts repaired late, a
 * partition, a clock further off) keeps the lease it already holds, while
 * replicas that heard it in time switch; the two owners may then both keep
 * their leases, with the replicas split between them, until a lease ends.
 * This was already so for claims arriving after the contention window (a
 * longer partition, a crash), and the rest of the table is unaffected. A
 * network with more hops or clocks further apart raises claimSkewMs (1.5 s
 * settles five-way contention among 256 simulated nodes, up to 15 hops of
 * 5–50 ms, clocks ±300 ms: bench/sim-sync.ts), and widens the race by as
 * much.
 *
 * Why the window as well. Claims bound what a replica credits from its first
 * sight of a claim; the window bounds it from the held lease's own `since`:
 * a replica gives an earlier claim no weight once its clock is
 * `contentionWindowMs` past the held lease's `since`, so contention ends
 * there whatever was credited. The window is read on the replica's clock
 * against the owner's `since`, so it is as exact as the clocks agree.
 *
 * The lease guarantee above therefore reads, with contention: no replica
 * accepts a non-owner's write over a lease before the owner's clock reads
 * `expires`, except an acquisition that is earlier by `since` and as
 * credited, within the contention window of the lease's acquisition.
 */
import { compareEntries, type Entry, type ParsedBody } from './entry.ts'
import type { SyncConfig } from './options.ts'

/** What a replica does with a verified version, given the one it holds. */
export type Decision = 'accept' | 'preempt' | 'duplicate' | 'stale' | 'leaseHeld' | 'lateClaim'

export interface MergeRules {
  /** Does `e`'s lease bind writers other than its author at local time `now`? */
  leaseBinds(e: Entry, now: number): boolean
  /**
   * What a replica holding `cur` does with a verified `e` at local time
   * `now` (Merge, Leases, Contention, Claims). Both arrival orders of two
   * versions give the same winner while `now` is within the window and both
   * are credited in full.
   */
  decide(e: Entry, cur: Entry | undefined, now: number): Decision
  /**
   * The cheap pre-check on a body not yet verified whose HLC is older than
   * `cur`'s: could it still win as an earlier lease acquisition? (Its author
   * is unknown yet, so a tie on `since` passes.) `lateClaim` when it claims
   * earlier but is not credited so, and `cur`'s lease binds.
   */
  mayPreempt(p: ParsedBody, cur: Entry, now: number): 'yes' | 'no' | 'lateClaim'
  /** The acquisition time a claim to have acquired at `since`, first seen at `now`, is credited with (Claims). */
  credit(since: number, now: number): number
}

export function mergeRules(
  opt: Pick<SyncConfig, 'leaseGraceMs' | 'contentionWindowMs' | 'claimSkewMs'>,
): MergeRules {
  const leaseBinds = (e: Entry, now: number): boolean =>
    e.expires !== undefined && now < e.expires + opt.leaseGraceMs

  const credit = (since: number, now: number): number => Math.max(since, now - opt.claimSkewMs)

  /**
   * Is `e` (another author's, leased) an earlier claim on the key than `cur`,
   * with its lease still running when `cur` was claimed? By acquisition time,
   * then author id; at equal times a lease beats a version whose lease does
   * not bind (that version would be refused in the other arrival order).
   */
  const claimsEarlier = (e: Entry, cur: Entry, now: number): boolean =>
    e.expires !== undefined &&
    e.expires > cur.since &&
    (e.since < cur.since || (e.since === cur.since && (!leaseBinds(cur, now) || e.author < cur.author)))

  return {
    leaseBinds,
    credit,

    decide(e, cur, now) {
      if (!cur) return 'accept'
      const c = compareEntries(e, cur)
      if (c === 0) return 'duplicate'
      if (e.author === cur.author) return c > 0 ? 'accept' : 'stale'
      const held = leaseBinds(cur, now)
      if (leaseBinds(e, now) && claimsEarlier(e, cur, now)) {
        // An earlier claim by its signer's word; it counts only if it is earlier as credited here too.
        if (now < cur.since + opt.contentionWindowMs && e.claim <= cur.claim) return 'preempt'
        if (held) return 'lateClaim'
      }
      if (held) return 'leaseHeld'
      return c > 0 ? 'accept' : 'stale'
    },

    mayPreempt(p, cur, now) {
      const expires = p.hlc[0] + p.leaseMs
      if (p.leaseMs === 0 || now >= expires + opt.leaseGraceMs) return 'no'
      const since = p.hlc[0] - p.heldMs
      if (expires <= cur.since || since > cur.since) return 'no'
      // Earlier by its signer's word, but not as credited here: a late claim, refused before its signature is checked.
      return credit(since, now) <= cur.claim ? 'yes' : leaseBinds(cur, now) ? 'lateClaim' : 'no'
    },
  }
}
