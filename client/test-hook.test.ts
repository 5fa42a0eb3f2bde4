import { describe, expect, it } from 'vitest'
import type { JoinOptions, OverlayNode } from './overlay.ts'
import { findTestHook, TEST_HOOK_GLOBAL } from './test-hook.ts'

describe('findTestHook', () => {
  it('finds nothing outside a test', () => {
    expect(findTestHook({})).toBeUndefined()
    expect(findTestHook({ [TEST_HOOK_GLOBAL]: null })).toBeUndefined()
    expect(findTestHook({ [TEST_HOOK_GLOBAL]: 'x' })).toBeUndefined()
  })

  it('calls only functions: an element standing in for the global (DOM clobbering) does nothing', () => {
    // <form id="__weftTestHook__"><input name="options"></form> makes the global a form whose
    // `options` is an element: found, but with nothing to call.
    const clobbered = { options: { tagName: 'INPUT' }, joined: 'text', failed: {} }
    const hook = findTestHook({ [TEST_HOOK_GLOBAL]: clobbered })
    expect(hook).toEqual({})
  })

  it("passes the app's options through the harness and reports the node, bound to the hook", () => {
    const seen: unknown[] = []
    const harness = {
      signal: 'http://localhost:1234',
      options(this: { signal: string }, o: JoinOptions): JoinOptions {
        return { ...o, signal: this.signal }
      },
      joined(this: unknown, node: unknown) {
        seen.push(this === harness, node)
      },
    }
    const hook = findTestHook({ [TEST_HOOK_GLOBAL]: harness })
    expect(hook?.options?.({ signal: 'https://prod.example', network: 'chat' })).toEqual({
      signal: 'http://localhost:1234',
      network: 'chat',
    })
    const node = { id: 'ab' } as unknown as OverlayNode
    hook?.joined?.(node)
    expect(seen).toEqual([true, node])
    expect(hook?.failed).toBeUndefined()
  })

  it('a report that throws never reaches the app (its node or its error stands)', () => {
    const hook = findTestHook({
      [TEST_HOOK_GLOBAL]: {
        joined() {
          throw new Error('harness bug')
        },
        failed() {
          throw new Error('harness bug')
        },
      },
    })
    expect(() => hook?.joined?.({} as OverlayNode)).not.toThrow()
    expect(() => hook?.failed?.(new Error('x'))).not.toThrow()
  })
})
