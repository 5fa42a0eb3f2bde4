/**
 * The shape every protocol state machine in shared/ follows (ARCHITECTURE.md
 * rule 2): built by `createX(deps, options)` from injected dependencies, no
 * module-level state, no timers. Messages enter through `handle`, time only
 * through `tick`. The host (browser, Node, or the simulator) owns links,
 * clocks and timers.
 */
import type { Keyring } from './identity/keys.ts'

export interface ProtocolDeps<M> {
  /** This node's id (40 lowercase hex characters). */
  readonly id: string
  /** Send `msg` to a node this one has a link to. Best effort: may be lost. */
  send(to: string, msg: M): void
  /** Milliseconds; a virtual clock in the simulator. */
  now(): number
  /** Uniform in [0, 1); seeded in the simulator. */
  random(): number
}

/** Deps for protocols that sign and verify (mesh broadcasts, sync entries, DHT records). */
export interface SignedProtocolDeps<M> extends ProtocolDeps<M> {
  readonly keys: Keyring
  /**
   * The linked peer `peer` sent what no honest node sends (a copy whose signature or shape fails:
   * honest nodes check before they pass anything on); the host may drop its link. @default ignored
   */
  misbehaved?(peer: string, what: string): void
}

/** Why a signed copy from a linked peer fails that makes the peer itself at fault (never clock or replay). */
export const PEER_FAULTS: ReadonlySet<string> = new Set(['badPayload', 'originMismatch', 'badSignature'])

export interface ProtocolNode<M> {
  /** A message from a linked node. May be async (signature checks); the host awaits it. */
  handle(from: string, msg: M): void | Promise<void>
  /** Time passes; do periodic work. */
  tick(now: number): void | Promise<void>
  /** A link to `peer` opened. */
  linkUp?(peer: string): void | Promise<void>
  /** The link to `peer` closed. */
  linkDown?(peer: string): void | Promise<void>
}

/** A counter bag every module exposes for stats() and tests: dropped inputs are counted by reason. */
export type Counters = Record<string, number>

export function bump(c: Counters, key: string, n = 1): void {
  c[key] = (c[key] ?? 0) + n
}
