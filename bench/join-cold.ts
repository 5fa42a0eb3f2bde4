/**
 * join-cold: where a returning page's join time goes (issue 14, item 2).
 *
 * In each of RUNS fresh contexts (a first visit saves the identity, then a
 * new page of the same context is the returning page, as in
 * `bench/browser.ts`), the returning page's join is traced in Chromium
 * (User Timing marks `weft:<phase>`, the renderer's tasks with their thread
 * time, V8's compile events); then the node closes and the same page joins
 * again, its code compiled and WebRTC started. Medians over the runs:
 *   - coldJoinMs / warmJoinMs: joinOverlay call to its return, the page's
 *     first join and its second;
 *   - mainBusyMs / mainCpuMs: the joining page's main thread during the
 *     cold join: wall time inside tasks, and the CPU time of those tasks
 *     (busy but not on a CPU: waiting on another thread, or for a core);
 *   - compileMs / compiledFunctions: V8's lazy compilation on that thread
 *     during the cold join (V8.CompileCode: thread time, and how many);
 *   - cold.<phase>Ms / warm.<phase>Ms: ms from the call to each phase.
 * Tracing slows the traced join (~300 ms here where `bench/browser.ts`
 * measures ~230): compare this benchmark's figures with its own, and join
 * time itself with `bench/browser.ts`.
 *
 *   npm run bench -- join-cold           (RUNS=7 by default: JOIN_COLD_RUNS)
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, Page } from '@playwright/test'
import { blankPage, join_, startSignalServer } from '../e2e/fixtures.ts'
import { ensureBuilt, launch, phaseFigures } from './_browser-kit.ts'
import { isMain, median, report } from './report.ts'

interface TraceEvent {
  name: string
  ph: string
  ts: number
  dur?: number
  tdur?: number
  pid: number
  tid: number
}

type Marks = [string, number][]

/** One joinOverlay in `p` (the bundle imported already): ms to its return, and its phases. */
function timedJoin(p: Page, signal: string): Promise<{ ms: number; marks: Marks }> {
  return p.evaluate(async (signal) => {
    const w = window as unknown as { weft: { joinOverlay(o: unknown): Promise<unknown> }; node: unknown }
    performance.clearMarks()
    const t0 = performance.now()
    w.node = await w.weft.joinOverlay({ signal, network: 'bench-cold', maxPeers: 1, targetPeers: 1 })
    const ms = performance.now() - t0
    const marks = performance
      .getEntriesByType('mark')
      .filter((m) => m.name.startsWith('weft:'))
      .map((m) => [m.name.slice(5), m.startTime - t0] as [string, number])
    return { ms, marks }
  }, signal)
}

function closeNode(p: Page): Promise<void> {
  return p.evaluate(() => (window as unknown as { node: { close(): Promise<void> } }).node.close())
}

/** The joining page's main thread between its `weft:join` and `weft:joined` marks. */
function mainThread(events: TraceEvent[]): { busy: number; cpu: number; compile: number; compiled: number } {
  const join = events.find((e) => e.name === 'weft:join')
  const joined = events.find((e) => e.name === 'weft:joined')
  if (!join || !joined) throw new Error('the trace has no weft:join / weft:joined marks')
  const onMain = (e: TraceEvent) => e.ph === 'X' && e.pid === join.pid && e.tid === join.tid
  let busy = 0
  let cpu = 0
  let compile = 0
  let compiled = 0
  for (const e of events) {
    if (!onMain(e)) continue
    const end = e.ts + (e.dur ?? 0)
    if (e.name === 'RunTask' && end >= join.ts && e.ts <= joined.ts) {
      busy += e.dur ?? 0
      cpu += e.tdur ?? 0
    } else if (e.name === 'V8.CompileCode' && e.ts >= join.ts && e.ts <= joined.ts) {
      compile += e.tdur ?? 0
      compiled++
    }
  }
  return { busy: busy / 1000, cpu: cpu / 1000, compile: compile / 1000, compiled }
}

/** Each phase's times over the runs. */
function phasesOf(runs: Marks[]): Record<string, number[]> {
  const at: Record<string, number[]> = {}
  for (const marks of runs)
    for (const [k, t] of marks) {
      at[k] = at[k] ?? []
      at[k].push(t)
    }
  return at
}

interface Run {
  cold: { ms: number; marks: Marks }
  warm: { ms: number; marks: Marks }
  main: ReturnType<typeof mainThread>
}

async function oneRun(browser: Browser, signal: string, dir: string, i: number): Promise<Run> {
  const ctx = await browser.newContext()
  try {
    const first = await blankPage(ctx, signal)
    await join_(first, signal, { network: 'bench-cold' })
    await closeNode(first)
    await first.close()
    const p = await blankPage(ctx, signal)
    await p.evaluate(async (signal) => {
      ;(window as unknown as { weft: unknown }).weft = await import(/* @vite-ignore */ `${signal}/weft.mjs`)
    }, signal)
    const path = join(dir, `join-${i}.json`)
    await browser.startTracing(p, {
      path,
      categories: [
        'devtools.timeline',
        'disabled-by-default-devtools.timeline',
        'blink.user_timing',
        'toplevel',
        'v8',
        'disabled-by-default-v8.compile',
      ],
    })
    const cold = await timedJoin(p, signal)
    await browser.stopTracing()
    const trace = JSON.parse(readFileSync(path, 'utf8')) as { traceEvents: TraceEvent[] }
    await closeNode(p)
    const warm = await timedJoin(p, signal)
    await closeNode(p)
    return { cold, warm, main: mainThread(trace.traceEvents) }
  } finally {
    await ctx.close()
  }
}

export async function run(): Promise<Record<string, number>> {
  const runs = Number(process.env.JOIN_COLD_RUNS ?? 7)
  ensureBuilt()
  const server = await startSignalServer()
  const browser = await launch()
  const dir = mkdtempSync(join(tmpdir(), 'weft-join-cold-'))
  try {
    // The page every join links to, waiting.
    const a = await blankPage(await browser.newContext(), server.url)
    await join_(a, server.url, { network: 'bench-cold' })
    const all: Run[] = []
    for (let i = 0; i < runs; i++) all.push(await oneRun(browser, server.url, dir, i))
    const m = (f: (r: Run) => number) => +median(all.map(f)).toFixed(1)
    const figures = {
      runs,
      coldJoinMs: m((r) => r.cold.ms),
      warmJoinMs: m((r) => r.warm.ms),
      mainBusyMs: m((r) => r.main.busy),
      mainCpuMs: m((r) => r.main.cpu),
      compileMs: m((r) => r.main.compile),
      compiledFunctions: m((r) => r.main.compiled),
      ...phaseFigures('cold', phasesOf(all.map((r) => r.cold.marks))),
      ...phaseFigures('warm', phasesOf(all.map((r) => r.warm.marks))),
    }
    report('join-cold', figures)
    return figures
  } finally {
    rmSync(dir, { recursive: true, force: true })
    await browser.close()
    await server.stop()
  }
}

if (isMain(import.meta.url)) await run()
