/** The virtual clock (clock.ts): time order, ties, intervals, cancelling, a node's timers stopped at once. */
import { describe, expect, it } from 'vitest'
import { VirtualClock } from './clock.ts'

describe('VirtualClock', () => {
  it('fires timers in time order, ties in the order they were set, and only when asked', () => {
    const clock = new VirtualClock(1000)
    const a = clock.view()
    const b = clock.view()
    const fired: string[] = []
    a.setTimeout(() => fired.push('a30'), 30)
    b.setTimeout(() => fired.push('b10'), 10)
    a.setTimeout(() => fired.push('a10'), 10)
    const t = b.setTimeout(() => fired.push('cancelled'), 20)
    b.clearTimeout(t)
    expect(fired).toEqual([])
    expect(clock.nextDue()).toBe(1010)
    while (clock.fireNext(1025));
    expect(fired).toEqual(['b10', 'a10'])
    expect(clock.now()).toBe(1010)
    clock.moveTo(1025)
    expect(clock.now()).toBe(1025)
    while (clock.fireNext(2000));
    expect(fired).toEqual(['b10', 'a10', 'a30'])
    expect(clock.now()).toBe(1030)
    expect(clock.pending).toBe(0)
  })

  it('repeats intervals until cleared; a timer set while firing runs after the others due then', () => {
    const clock = new VirtualClock(0)
    const v = clock.view()
    const at: number[] = []
    const id = v.setInterval(() => {
      at.push(clock.now())
      if (at.length === 1) v.setTimeout(() => at.push(-clock.now()), 0)
    }, 100)
    while (clock.fireNext(350));
    expect(at).toEqual([100, -100, 200, 300])
    v.clearInterval(id)
    expect(clock.fireNext(10_000)).toBe(false)
  })

  it("stop() cancels every timer of one view and ignores new ones; other views' timers stay", async () => {
    const clock = new VirtualClock(0)
    const crashed = clock.view()
    const alive = clock.view()
    const fired: string[] = []
    crashed.setInterval(() => fired.push('crashed'), 10)
    crashed.setTimeout(() => fired.push('crashed-once'), 15)
    alive.setTimeout(() => fired.push('alive'), 20)
    crashed.stop()
    crashed.setTimeout(() => fired.push('after-stop'), 1)
    while (clock.fireNext(100));
    expect(fired).toEqual(['alive'])
    // sleep is a timer of the clock
    let woke = false
    void alive.sleep(50).then(() => {
      woke = true
    })
    while (clock.fireNext(clock.now() + 49));
    await Promise.resolve()
    expect(woke).toBe(false)
    while (clock.fireNext(clock.now() + 50));
    await Promise.resolve()
    expect(woke).toBe(true)
  })
})
