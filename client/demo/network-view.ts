/**
 * The live drawing of the network this node knows: itself, its links and
 * its neighbours' mesh links (peer exchange), and every node present in the
 * network (presence: also those no link is known to, drawn without one, and
 * each with the name it set), as an SVG force layout. This
 * node is pinned at the centre; relayed links are dashed, on-demand (non-mesh)
 * links dotted. Positions persist across updates so the picture never jumps;
 * the layout re-heats only when the graph changes.
 *
 * The caption counts this node's own links apart from the links between
 * other nodes: the first is exact (and the same number the Links panel and
 * the counters show), the second is what the neighbours last said in peer
 * exchange, which each sends when a link opens and then every 15 s. Tabs of
 * one full mesh therefore agree on their own links at once, and on the rest
 * within one peer-exchange round; a single "links" total mixed the two and
 * differed from tab to tab.
 */
import { colorOf, s, setText, shortId } from './dom.ts'

export interface GraphInput {
  me: string
  topology: Record<string, string[]>
  links: { id: string; transport: 'webrtc' | 'relay'; mesh: boolean; rtt: number }[]
  /** Every node present in the network (node.presence.get()), with its state. */
  present?: Map<string, { state: unknown }>
}

type NodeKind = 'me' | 'peer' | 'far' | 'present'

/** The name a node's presence state gives (`{ name }`, as the demo sets it), if any. */
export function nameOf(state: unknown): string | undefined {
  const name = (state as { name?: unknown } | null)?.name
  return typeof name === 'string' && name.trim() !== '' ? name.trim().slice(0, 24) : undefined
}
type EdgeKind = 'webrtc' | 'relay' | 'on-demand' | 'far'

interface GNode {
  id: string
  kind: NodeKind
  x: number
  y: number
  vx: number
  vy: number
  el: SVGGElement
  title: SVGTitleElement
}

interface GEdge {
  a: string
  b: string
  kind: EdgeKind
  el: SVGLineElement
}

const PAD = 26
const LINK_LEN = 150
const REPEL = 9000
const SPRING = 0.04
const GRAVITY = 0.004

export class NetworkView {
  private readonly nodes = new Map<string, GNode>()
  private readonly edges = new Map<string, GEdge>()
  private readonly edgeLayer: SVGGElement
  private readonly nodeLayer: SVGGElement
  private readonly lonely: SVGTextElement
  private alpha = 0
  private frame = 0
  private w = 640
  private h = 300
  private readonly reducedMotion = matchMedia('(prefers-reduced-motion: reduce)').matches

  constructor(
    svg: SVGSVGElement,
    private readonly caption: HTMLElement,
  ) {
    // One SVG unit per CSS pixel: the drawing uses all the room the panel gives it.
    this.fit(svg)
    new ResizeObserver(() => this.fit(svg)).observe(svg)
    this.edgeLayer = s('g', { class: 'edges' })
    this.nodeLayer = s('g', { class: 'nodes' })
    this.lonely = s('text', { class: 'lonely', x: 0, y: 58, 'text-anchor': 'middle' }, 'Joining…')
    svg.replaceChildren(this.edgeLayer, this.nodeLayer, this.lonely)
  }

  update(g: GraphInput): void {
    const kinds = new Map<string, NodeKind>([[g.me, 'me']])
    const linkOf = new Map(g.links.map((l) => [l.id, l]))
    for (const l of g.links) kinds.set(l.id, 'peer')
    const edges = new Map<string, { a: string; b: string; kind: EdgeKind }>()
    const addEdge = (a: string, b: string, kind: EdgeKind) => {
      if (a === b) return
      const key = a < b ? `${a}|${b}` : `${b}|${a}`
      if (!edges.has(key) || kind !== 'far') edges.set(key, { a, b, kind })
    }
    for (const l of g.links) addEdge(g.me, l.id, !l.mesh ? 'on-demand' : l.transport)
    for (const [from, tos] of Object.entries(g.topology)) {
      if (from === g.me) continue
      if (!kinds.has(from)) kinds.set(from, 'far')
      for (const to of tos) {
        // Our own links come from linkDetails(), which knows their transport.
        if (to === g.me) continue
        if (!kinds.has(to)) kinds.set(to, 'far')
        addEdge(from, to, 'far')
      }
    }
    // Present nodes no link is known to: drawn all the same (presence reaches every node).
    for (const id of g.present?.keys() ?? []) if (!kinds.has(id)) kinds.set(id, 'present')

    let changed = false
    for (const [id, n] of this.nodes)
      if (!kinds.has(id)) {
        n.el.remove()
        this.nodes.delete(id)
        changed = true
      }
    for (const [id, kind] of kinds) {
      const n = this.nodes.get(id) ?? this.addNode(id, g, edges)
      if (n.kind !== kind || !n.el.isConnected) changed = true
      this.styleNode(n, kind, linkOf.get(id), nameOf(g.present?.get(id)?.state))
    }
    for (const [key, e] of this.edges)
      if (!edges.has(key)) {
        e.el.remove()
        this.edges.delete(key)
        changed = true
      }
    for (const [key, e] of edges) {
      let ge = this.edges.get(key)
      if (!ge) {
        ge = { ...e, el: s('line') }
        this.edgeLayer.append(ge.el)
        this.edges.set(key, ge)
        changed = true
      }
      ge.kind = e.kind
      ge.el.setAttribute('class', `edge ${e.kind}`)
    }

    this.say(
      this.nodes.size > 1
        ? ''
        : 'No peers yet: open this page in another tab or browser to grow the network.',
    )
    const known = this.nodes.size
    const present = g.present?.size ?? 0
    const mine = g.links.length
    const others = [...edges.values()].filter((e) => e.a !== g.me && e.b !== g.me).length
    setText(
      this.caption,
      `${known} node${known === 1 ? '' : 's'} known · ${present} present · ${mine} link${mine === 1 ? '' : 's'} here` +
        (others ? ` · ${others} between others` : ''),
    )
    this.caption.title =
      "Present: the nodes presence says are in the network now. Links here: this node's open links, now. Between others: what its neighbours last reported (peer exchange, when a link opens and every 15 s)."

    if (changed) this.reheat()
  }

  private fit(svg: SVGSVGElement): void {
    const w = Math.round(svg.clientWidth)
    const h = Math.round(svg.clientHeight)
    if (w < 50 || h < 50 || (w === this.w && h === this.h)) return
    this.w = w
    this.h = h
    svg.setAttribute('viewBox', `${-w / 2} ${-h / 2} ${w} ${h}`)
    if (this.nodes.size > 1) this.reheat()
  }

  /** A line of text under the centre (joining, alone, failed); empty hides it. */
  say(text: string): void {
    setText(this.lonely, text)
    this.lonely.style.display = text ? '' : 'none'
  }

  private addNode(id: string, g: GraphInput, edges: Map<string, { a: string; b: string }>): GNode {
    // A newcomer starts next to a node it is linked to, so it glides in instead of flying across.
    let x = 0
    let y = 0
    for (const e of edges.values()) {
      const other = e.a === id ? e.b : e.b === id ? e.a : undefined
      const o = other && this.nodes.get(other)
      if (o) {
        x = o.x
        y = o.y
        break
      }
    }
    const angle = Math.random() * Math.PI * 2
    if (id !== g.me) {
      x += Math.cos(angle) * 40
      y += Math.sin(angle) * 40
    }
    const title = s('title')
    const el = s('g', { class: 'node' }, title)
    el.append(
      s('circle', { class: 'halo', r: 17 }),
      s('circle', { class: 'body', r: 10, fill: colorOf(id) }),
      s('text', { class: 'label', y: 27, 'text-anchor': 'middle' }, shortId(id)),
    )
    this.nodeLayer.append(el)
    const n: GNode = { id, kind: 'far', x, y, vx: 0, vy: 0, el, title }
    this.nodes.set(id, n)
    return n
  }

  private styleNode(
    n: GNode,
    kind: NodeKind,
    link: GraphInput['links'][number] | undefined,
    name: string | undefined,
  ): void {
    n.kind = kind
    n.el.setAttribute('class', `node ${kind}`)
    const label = n.el.querySelector('.label')
    const shown = name ?? shortId(n.id)
    if (label) setText(label, kind === 'me' ? `${shown} (you)` : shown)
    // The first line is the id (tests and tools read it).
    let t = n.id
    if (name) t += `\n${name}`
    if (kind === 'me') t += '\nthis node'
    else if (link)
      t += `\n${link.transport} link${link.mesh ? '' : ' (on demand)'}${Number.isFinite(link.rtt) ? `, RTT ${Math.round(link.rtt)} ms` : ''}`
    else if (kind === 'present') t += '\npresent; no link to it known here'
    else t += '\nknown through a neighbour'
    setText(n.title, t)
  }

  private reheat(): void {
    this.alpha = Math.max(this.alpha, 0.7)
    if (this.reducedMotion) {
      while (this.alpha > 0.02) this.step()
      this.render()
      return
    }
    if (!this.frame) this.frame = requestAnimationFrame(() => this.animate())
  }

  private animate(): void {
    this.frame = 0
    this.step()
    this.render()
    if (this.alpha > 0.02) this.frame = requestAnimationFrame(() => this.animate())
  }

  private step(): void {
    const ns = [...this.nodes.values()]
    for (let i = 0; i < ns.length; i++) {
      const a = ns[i] as GNode
      for (let j = i + 1; j < ns.length; j++) {
        const b = ns[j] as GNode
        let dx = a.x - b.x
        let dy = a.y - b.y
        let d2 = dx * dx + dy * dy
        if (d2 < 1) {
          dx = Math.random() - 0.5
          dy = Math.random() - 0.5
          d2 = 1
        }
        const f = REPEL / d2
        const d = Math.sqrt(d2)
        a.vx += (dx / d) * f
        a.vy += (dy / d) * f
        b.vx -= (dx / d) * f
        b.vy -= (dy / d) * f
      }
    }
    const len = Math.min(LINK_LEN, this.h * 0.42)
    for (const e of this.edges.values()) {
      const a = this.nodes.get(e.a)
      const b = this.nodes.get(e.b)
      if (!a || !b) continue
      const dx = b.x - a.x
      const dy = b.y - a.y
      const d = Math.sqrt(dx * dx + dy * dy) || 1
      const f = (d - len) * SPRING
      a.vx += (dx / d) * f
      a.vy += (dy / d) * f
      b.vx -= (dx / d) * f
      b.vy -= (dy / d) * f
    }
    for (const n of ns) {
      if (n.kind === 'me') {
        n.x = 0
        n.y = 0
        n.vx = 0
        n.vy = 0
        continue
      }
      // The drawing is wider than tall: pull harder vertically.
      n.vx -= n.x * GRAVITY
      n.vy -= n.y * GRAVITY * 2
      n.x = clamp(n.x + n.vx * this.alpha, -this.w / 2 + PAD * 2, this.w / 2 - PAD * 2)
      n.y = clamp(n.y + n.vy * this.alpha, -this.h / 2 + PAD, this.h / 2 - PAD * 1.5)
      n.vx *= 0.55
      n.vy *= 0.55
    }
    this.alpha *= 0.985
  }

  private render(): void {
    for (const n of this.nodes.values())
      n.el.setAttribute('transform', `translate(${n.x.toFixed(1)} ${n.y.toFixed(1)})`)
    for (const e of this.edges.values()) {
      const a = this.nodes.get(e.a)
      const b = this.nodes.get(e.b)
      if (!a || !b) continue
      e.el.setAttribute('x1', a.x.toFixed(1))
      e.el.setAttribute('y1', a.y.toFixed(1))
      e.el.setAttribute('x2', b.x.toFixed(1))
      e.el.setAttribute('y2', b.y.toFixed(1))
    }
  }
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(Math.max(v, lo), hi)
}
