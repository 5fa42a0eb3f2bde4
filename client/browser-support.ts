/**
 * What a browser must have for weft, checked before a browser node starts,
 * so that a missing feature is named (UnsupportedError, `feature`) instead
 * of failing later as a TypeError deep inside WebCrypto or IndexedDB:
 *
 *   secure context   https:, or http://localhost (WebCrypto, IndexedDB keys and Web Locks need it)
 *   Ed25519          WebCrypto's Ed25519 (the node's identity): Chrome and Edge 137+, Firefox 129+, Safari 17+
 *   IndexedDB        where the identity and the table are kept
 *   CompressionStream('deflate-raw')   the frame codec: Chrome 103+, Firefox 113+, Safari 16.4+
 *
 * and one it can do without: without RTCPeerConnection (WebRTC turned off)
 * every link goes through the signal server's relay.
 *
 * It takes the global object as an argument, so that a test can hand it a
 * browser that lacks one of them.
 */
import { UnsupportedError } from '../shared/errors.ts'

/** The part of a browser's global object looked at here. */
export interface BrowserGlobals {
  isSecureContext?: boolean | undefined
  location?: { origin: string; protocol: string } | undefined
  crypto?: { subtle?: Pick<SubtleCrypto, 'importKey'> | undefined } | undefined
  indexedDB?: unknown
  CompressionStream?: (new (format: 'deflate-raw') => unknown) | undefined
  RTCPeerConnection?: unknown
}

/** A valid Ed25519 public key (RFC 8032 test 1): importing it costs microseconds, generating a key more. */
const ED25519_TEST_KEY = new Uint8Array([
  0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a, 0x0e, 0xe1,
  0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
])

/** Throws UnsupportedError naming the first missing feature; resolves with whether WebRTC is there. */
export async function checkBrowser(g: BrowserGlobals): Promise<{ webrtc: boolean }> {
  const origin = g.location?.origin ?? 'this page'
  if (g.isSecureContext !== true)
    throw new UnsupportedError(
      'secure-context',
      `weft needs a secure context, and ${origin} is not one: serve the page over https: ` +
        '(or from http://localhost while developing). WebCrypto, IndexedDB keys and Web Locks exist only there.',
    )
  const subtle = g.crypto?.subtle
  if (!subtle)
    throw new UnsupportedError(
      'WebCrypto',
      "this browser has no WebCrypto (crypto.subtle), which weft's identities need",
    )
  try {
    await subtle.importKey('raw', ED25519_TEST_KEY, { name: 'Ed25519' }, true, ['verify'])
  } catch (err) {
    throw new UnsupportedError(
      'Ed25519',
      `this browser's WebCrypto has no Ed25519 (${(err as Error)?.name ?? 'error'}), which a weft identity is: ` +
        'it needs Chrome or Edge 137+, Firefox 129+ or Safari 17+',
    )
  }
  if (!g.indexedDB)
    throw new UnsupportedError(
      'IndexedDB',
      'this browser has no IndexedDB (private browsing may turn it off); weft keeps its identity there',
    )
  let deflate = false
  try {
    if (g.CompressionStream) {
      new g.CompressionStream('deflate-raw')
      deflate = true
    }
  } catch {}
  if (!deflate)
    throw new UnsupportedError(
      'CompressionStream',
      "this browser has no CompressionStream('deflate-raw'), which weft's frames use: " +
        'it needs Chrome or Edge 103+, Firefox 113+ or Safari 16.4+',
    )
  return { webrtc: typeof g.RTCPeerConnection === 'function' }
}

/**
 * A page served over https: cannot reach an http: server (mixed content), except on this machine:
 * say so instead of letting the browser block it silently.
 */
export function checkMixedContent(pageProtocol: string | undefined, signal: readonly string[]): void {
  if (pageProtocol !== 'https:') return
  for (const url of signal) {
    const u = new URL(url)
    if (u.protocol === 'http:' && !['localhost', '127.0.0.1', '[::1]'].includes(u.hostname))
      throw new TypeError(
        `signal: this page is served over https:, and the browser blocks requests to ${u.origin} ` +
          `(mixed content): give the server's https: URL, https://${u.host}`,
      )
  }
}
