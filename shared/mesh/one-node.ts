/**
 * One mesh node with stub dependencies, for tests that feed it messages by
 * hand (optimise.test.ts, routes.test.ts): a clock the test sets, and a
 * list of what the node sent. Honest broadcasts come from a real origin
 * mesh, so a test never encodes one differently from the real origin.
 */
import { createFakeKeyring } from '../sim/fake-keys.ts'
import { mulberry32 } from '../sim/prng.ts'
import { createMesh, type Mesh, type MeshOptions } from './mesh.ts'
import type { GossipMsg, MeshMsg } from './messages.ts'

export interface OneNode {
  mesh: Mesh
  sent: { to: string; msg: MeshMsg }[]
  clock: { t: number }
  /** Take (and forget) what was sent, optionally only of one type. */
  take(type?: MeshMsg['type']): { to: string; msg: MeshMsg }[]
}

/** Node `id`, linked to `links` (all eager at first), its clock at 1 s. */
export function oneNode(id: string, links: string[], options?: MeshOptions): OneNode {
  const sent: { to: string; msg: MeshMsg }[] = []
  const clock = { t: 1_000 }
  const mesh = createMesh(
    {
      id,
      keys: createFakeKeyring(id),
      send: (to, msg) => void sent.push({ to, msg }),
      now: () => clock.t,
      random: mulberry32(11),
      neighbours: () => links,
    },
    options,
  )
  for (const l of links) mesh.linkUp(l)
  return {
    mesh,
    sent,
    clock,
    take(type) {
      const out = sent.filter((s) => !type || s.msg.type === type)
      sent.splice(0, sent.length, ...sent.filter((s) => !out.includes(s)))
      return out
    },
  }
}

/** Broadcast `i` by `origin`, genuine, as relayed to `to` at `hops` (flagged as a route's push with `r`). */
export async function relayed(
  origin: string,
  to: string,
  i: number,
  hops: number,
  r = false,
): Promise<GossipMsg & { id: string }> {
  const out: MeshMsg[] = []
  const o = createMesh({
    id: origin,
    keys: createFakeKeyring(origin),
    send: (_to, msg) => void out.push(msg),
    now: () => 1_000,
    random: mulberry32(i + 1),
    neighbours: () => [to],
  })
  o.linkUp(to)
  const id = await o.broadcast('t', { i })
  return { ...(out[0] as GossipMsg), hops, ...(r ? { r: true as const } : {}), id }
}
