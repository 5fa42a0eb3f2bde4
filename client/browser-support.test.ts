/** A browser that lacks what weft needs is told which feature (browser-support.ts). The real ones: e2e/join.spec.ts. */
import { describe, expect, it } from 'vitest'
import { type BrowserGlobals, checkBrowser, checkMixedContent } from './browser-support.ts'

/** A browser with everything weft needs (Node's WebCrypto has Ed25519). */
const complete: BrowserGlobals = {
  isSecureContext: true,
  location: { origin: 'https://app.example', protocol: 'https:' },
  crypto: { subtle: globalThis.crypto.subtle },
  indexedDB: {},
  CompressionStream: globalThis.CompressionStream,
  RTCPeerConnection: class {},
}

async function missing(g: BrowserGlobals): Promise<{ name: string; feature: string; message: string }> {
  return checkBrowser(g).then(
    () => ({ name: 'none', feature: '', message: '' }),
    (e: Error & { feature: string }) => ({ name: e.name, feature: e.feature, message: e.message }),
  )
}

describe('browser support', () => {
  it('passes a browser that has it all, and says whether it has WebRTC', async () => {
    expect(await checkBrowser(complete)).toEqual({ webrtc: true })
    expect(await checkBrowser({ ...complete, RTCPeerConnection: undefined })).toEqual({ webrtc: false })
  })

  it('names an insecure context with the page origin and what to do', async () => {
    const e = await missing({
      ...complete,
      isSecureContext: false,
      location: { origin: 'http://192.168.1.5:8080', protocol: 'http:' },
    })
    expect(e).toMatchObject({ name: 'UnsupportedError', feature: 'secure-context' })
    expect(e.message).toBe(
      'weft needs a secure context, and http://192.168.1.5:8080 is not one: serve the page over https: ' +
        '(or from http://localhost while developing). WebCrypto, IndexedDB keys and Web Locks exist only there.',
    )
  })

  it('names a WebCrypto without Ed25519, with the browsers that have it', async () => {
    const noEd25519 = {
      importKey: () =>
        Promise.reject(
          Object.assign(new Error('Algorithm: Unrecognized name'), { name: 'NotSupportedError' }),
        ),
    }
    const e = await missing({ ...complete, crypto: { subtle: noEd25519 } })
    expect(e).toMatchObject({ name: 'UnsupportedError', feature: 'Ed25519' })
    expect(e.message).toBe(
      "this browser's WebCrypto has no Ed25519 (NotSupportedError), which a weft identity is: " +
        'it needs Chrome or Edge 137+, Firefox 129+ or Safari 17+',
    )
    expect((await missing({ ...complete, crypto: {} })).feature).toBe('WebCrypto')
  })

  it('names missing IndexedDB and CompressionStream', async () => {
    expect((await missing({ ...complete, indexedDB: undefined })).feature).toBe('IndexedDB')
    class OnlyGzip {
      constructor(format: string) {
        if (format !== 'gzip') throw new TypeError(`Unsupported compression format: '${format}'`)
      }
    }
    const e = await missing({ ...complete, CompressionStream: OnlyGzip })
    expect(e.feature).toBe('CompressionStream')
    expect(e.message).toContain("no CompressionStream('deflate-raw')")
    expect((await missing({ ...complete, CompressionStream: undefined })).feature).toBe('CompressionStream')
  })

  it('says that an https: page cannot reach an http: signal server (but may reach one on this machine)', () => {
    expect(() => checkMixedContent('https:', ['http://signal.example.org:8080'])).toThrow(
      'signal: this page is served over https:, and the browser blocks requests to http://signal.example.org:8080 ' +
        "(mixed content): give the server's https: URL, https://signal.example.org:8080",
    )
    expect(() =>
      checkMixedContent('https:', ['http://localhost:8080', 'https://signal.example.org']),
    ).not.toThrow()
    expect(() => checkMixedContent('http:', ['http://signal.example.org'])).not.toThrow()
  })
})
