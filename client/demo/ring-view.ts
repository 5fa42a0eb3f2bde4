/**
 * The Chord ring as this node sees it: every known node at its place on the
 * 160-bit circle (clockwise from the top), this node highlighted, chords to
 * its fingers, its successors and predecessor marked, and the last key looked
 * up with a line to the node responsible for it.
 */
import { colorOf, s, shortId } from './dom.ts'

export interface RingInput {
  me: string
  known: string[]
  fingers: string[]
  successors: string[]
  predecessor: string | undefined
  /** The last key looked up: its 40-hex position and the node found for it. */
  lookup?: { key: string; position: string; node: string | undefined } | undefined
}

const R = 118

/** Where an id (or key hash) sits on the ring, as a fraction of a turn (first 52 bits). */
export function ringFraction(hex: string): number {
  const v = Number.parseInt(hex.slice(0, 13), 16)
  return Number.isFinite(v) ? v / 2 ** 52 : 0
}

function point(hex: string, r = R): { x: number; y: number } {
  const a = ringFraction(hex) * Math.PI * 2 - Math.PI / 2
  return { x: Math.cos(a) * r, y: Math.sin(a) * r }
}

const f1 = (n: number) => n.toFixed(1)

export function drawRing(svg: SVGSVGElement, g: RingInput): void {
  svg.setAttribute('viewBox', '-150 -150 300 300')
  const parts: SVGElement[] = [
    s('circle', { class: 'ring', r: R }),
    s('text', { class: 'tick', x: 0, y: -R - 17, 'text-anchor': 'middle' }, '0'),
  ]
  const me = point(g.me)
  const ids = new Set([g.me, ...g.known, ...g.fingers, ...g.successors])
  if (g.predecessor) ids.add(g.predecessor)
  if (g.lookup?.node) ids.add(g.lookup.node)

  // Successor arc: from this node clockwise to its last successor.
  const lastSucc = g.successors[g.successors.length - 1]
  if (lastSucc) {
    const a = point(g.me)
    const b = point(lastSucc)
    let sweep = ringFraction(lastSucc) - ringFraction(g.me)
    if (sweep <= 0) sweep += 1
    parts.push(
      s('path', {
        class: 'succ-arc',
        d: `M ${f1(a.x)} ${f1(a.y)} A ${R} ${R} 0 ${sweep > 0.5 ? 1 : 0} 1 ${f1(b.x)} ${f1(b.y)}`,
      }),
    )
  }
  for (const f of g.fingers) {
    if (f === g.me) continue
    const p = point(f)
    // A chord bent toward the centre, so fingers to near neighbours stay visible.
    const cx = (me.x + p.x) * 0.3
    const cy = (me.y + p.y) * 0.3
    parts.push(
      s('path', {
        class: 'finger',
        d: `M ${f1(me.x)} ${f1(me.y)} Q ${f1(cx)} ${f1(cy)} ${f1(p.x)} ${f1(p.y)}`,
      }),
    )
  }
  if (g.lookup) {
    const k = point(g.lookup.position)
    if (g.lookup.node) {
      const n = point(g.lookup.node)
      parts.push(s('line', { class: 'lookup-line', x1: f1(k.x), y1: f1(k.y), x2: f1(n.x), y2: f1(n.y) }))
    }
    const kk = point(g.lookup.position, R + 12)
    parts.push(
      s(
        'path',
        { class: 'key-mark', d: `M ${f1(kk.x)} ${f1(kk.y - 6)} l 6 6 l -6 6 l -6 -6 z` },
        s('title', null, `key “${g.lookup.key}” at ${g.lookup.position.slice(0, 8)}…`),
      ),
    )
  }
  const fingers = new Set(g.fingers)
  const succs = new Set(g.successors)
  for (const id of [...ids].sort((a, b) => (a === g.me ? 1 : b === g.me ? -1 : 0))) {
    const p = point(id)
    const roles: string[] = []
    if (id === g.me) roles.push('this node')
    if (succs.has(id)) roles.push(`successor ${g.successors.indexOf(id) + 1}`)
    if (id === g.predecessor) roles.push('predecessor')
    if (fingers.has(id)) roles.push('finger')
    if (id === g.lookup?.node) roles.push(`responsible for “${g.lookup.key}”`)
    const cls = ['ring-node']
    if (id === g.me) cls.push('me')
    if (fingers.has(id)) cls.push('finger')
    if (succs.has(id)) cls.push('succ')
    if (id === g.predecessor) cls.push('pred')
    parts.push(
      s(
        'g',
        { class: cls.join(' '), transform: `translate(${f1(p.x)} ${f1(p.y)})` },
        s('title', null, `${id}${roles.length ? `\n${roles.join(', ')}` : ''}`),
        id === g.me && s('circle', { class: 'rn-halo', r: 11 }),
        s('circle', { class: 'rn-body', r: id === g.me ? 6.5 : 5.5, fill: colorOf(id) }),
      ),
    )
  }
  const label = point(g.me, R - 22)
  parts.push(
    s('text', { class: 'me-label', x: f1(label.x), y: f1(label.y + 4), 'text-anchor': 'middle' }, 'you'),
    s(
      'text',
      { class: 'center', x: 0, y: -4, 'text-anchor': 'middle' },
      `${ids.size} node${ids.size === 1 ? '' : 's'}`,
    ),
    s('text', { class: 'center sub', x: 0, y: 12, 'text-anchor': 'middle' }, shortId(g.me)),
  )
  svg.replaceChildren(...parts)
}
