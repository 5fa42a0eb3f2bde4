/**
 * weft for browsers: the bundle's entry (`/weft.js` sets the global `Weft`,
 * `/weft.mjs` is ESM).
 *
 * Identity lasts: the key pair is created once, non-extractable, and kept in
 * IndexedDB (idb-keyval stores CryptoKeys as they are). Two tabs of one
 * origin open at once must not share an id, so each tab claims a numbered
 * slot with a Web Lock held for its lifetime; a reload frees the slot and
 * takes it again, keeping its id.
 *
 * Before anything, joinOverlay checks its options (join-options.ts) and the
 * browser (browser-support.ts), so that a mistake or a missing feature is
 * named with what to do about it.
 */
import { createStore, get, set } from 'idb-keyval'
import { io } from 'socket.io-client'
import { UnsupportedError } from '../shared/errors.ts'
import { generateIdentity, type Identity, identityFromKeyPair } from '../shared/identity/keys.ts'
import { checkPuzzleBits, DEFAULT_PUZZLE_BITS, meetsPuzzle } from '../shared/identity/puzzle.ts'
import type { Value } from '../shared/types.ts'
import { checkBrowser, checkMixedContent } from './browser-support.ts'
import { NodeFacade } from './facade.ts'
import { checkJoinOptions, checkSignalUrls } from './join-options.ts'
// Not simple-peer: its browser build carries Buffer/stream/process shims (~29 KB gzip); see native-peer.ts.
import {
  dropWarmOffer,
  makeCertificate,
  NativePeer,
  prewarmOffer,
  usableCertificate,
  withCertificate,
} from './links/native-peer.ts'
import type { JoinOptions } from './node/options.ts'
import { markPhase } from './node/timeline.ts'
import { OverlayNode } from './overlay.ts'
import { type Preconnection, preconnect } from './signal-client.ts'
import type { NodeStorage } from './storage.ts'
import { findTestHook } from './test-hook.ts'
import type { WeftNode } from './weft-node.ts'

export * from './api.ts'

const MAX_SLOTS = 64

async function claimSlot(): Promise<{ slot: number; release: () => void }> {
  const locks = (navigator as Navigator & { locks?: LockManager }).locks
  if (!locks) return { slot: 0, release: () => {} }
  for (let slot = 0; slot < MAX_SLOTS; slot++) {
    let release!: () => void
    const held = new Promise<void>((r) => {
      release = r
    })
    const got = await new Promise<boolean>((resolve) => {
      void locks.request(`weft-identity-${slot}`, { ifAvailable: true }, async (lock) => {
        if (!lock) return resolve(false)
        resolve(true)
        await held // keep the slot until the node closes or the page goes away
      })
    })
    if (got) return { slot, release }
  }
  throw new Error(`more than ${MAX_SLOTS} weft nodes open in this browser profile`)
}

/** The table (and anything else a node keeps) in IndexedDB, per identity slot. */
function idbStorage(slot: number): NodeStorage {
  const store = createStore('weft-data', 'data')
  return {
    load: async (name) => (await get(`${slot}/${name}`, store)) as Value | undefined,
    save: (name, v) => set(`${slot}/${name}`, v, store),
  }
}

/** An IndexedDB operation whose failure (private browsing, a full disk, a blocked profile) is named as such. */
async function idb<T>(op: Promise<T>): Promise<T> {
  try {
    return await op
  } catch (err) {
    const e = err as { name?: string; message?: string } | undefined
    throw new UnsupportedError(
      'IndexedDB',
      `IndexedDB failed here (${e?.name ?? 'Error'}: ${e?.message ?? err}); weft keeps its identity in it ` +
        '(private browsing, or a profile that blocks site data, may turn it off)',
    )
  }
}

interface LoadedIdentity {
  identity: Identity
  release: () => void
  slot: number
  /** This page's DTLS certificate (native-peer.ts): the saved one, or one just made; undefined if none could be. */
  certificate: RTCCertificate | undefined
}

/**
 * The identity of this tab's slot and its DTLS certificate, read at once
 * (apart: a certificate record this browser cannot read back, say with
 * WebRTC since turned off, must not cost the identity); whichever is
 * missing, or no longer good, is made and saved, the two together on a
 * first visit. The join waits for a certificate at most CERT_WAIT_MS, and
 * never for its save.
 */
async function loadBrowserIdentity(
  puzzleBits: number,
  onCertificate: (cert: RTCCertificate) => void = () => {},
): Promise<LoadedIdentity> {
  const { slot, release } = await claimSlot()
  try {
    const store = createStore('weft', 'keys')
    const key = `identity-${slot}`
    const certKey = `certificate-${slot}`
    // The saved certificate is handed on as soon as it is read, before the identity is (its first
    // offer is made meanwhile: joinWith).
    const savedCert = get(certKey, store).then(usableCertificate, () => undefined)
    void savedCert.then((c) => c && onCertificate(c))
    const saved = (await idb(get(key, store))) as CryptoKeyPair | undefined
    if (saved?.privateKey && saved.publicKey) {
      const identity = await identityFromKeyPair(saved)
      // A key made before the network asked for this much work is replaced (once).
      if (meetsPuzzle(identity.publicKey, puzzleBits)) {
        const certificate = (await savedCert) ?? (await newCertificate(store, certKey, onCertificate))
        return { identity, release, slot, certificate }
      }
    }
    // The new identity gets a certificate of its own: an offer made ahead with the old one goes.
    const old = await savedCert
    if (old) dropWarmOffer(old)
    // A first visit: the certificate is made while the identity's puzzle is worked.
    const made = newCertificate(store, certKey, onCertificate)
    const identity = await generateIdentity({ puzzleBits })
    await idb(set(key, identity.keyPair, store))
    return { identity, release, slot, certificate: await made }
  } catch (err) {
    release()
    throw err
  }
}

/** How long a join waits for a new certificate (made in ~20 ms; else its connections make their own). */
const CERT_WAIT_MS = 1000

/** A certificate made now for this slot, and saved (not waited for: a browser that cannot store one makes one per join). */
async function newCertificate(
  store: ReturnType<typeof createStore>,
  certKey: string,
  onCertificate: (cert: RTCCertificate) => void,
): Promise<RTCCertificate | undefined> {
  const making = makeCertificate()
  void making
    .then((c) => {
      if (!c) return
      onCertificate(c)
      return set(certKey, c, store)
    })
    .catch(() => {})
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(resolve, CERT_WAIT_MS, undefined)
  })
  try {
    return await Promise.race([making, late])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Join a weft network. Resolves once registered with a signal server and linked to a peer (or alone).
 * Mistakes in the options are TypeErrors, a browser that lacks what weft needs an UnsupportedError
 * (browser-support.ts), no server that registers us within timeoutMs a SignalError.
 */
export async function joinOverlay(options: JoinOptions): Promise<WeftNode> {
  // Under weft/testing/playwright only (test-hook.ts): the test's server and network, and the node reported.
  const hook = findTestHook(globalThis)
  if (!hook) return join(options)
  try {
    const node = await join(hook.options ? hook.options(options) : options, hook.lieAboutFiles?.() === true)
    hook.joined?.(node)
    return node
  } catch (err) {
    hook.failed?.(err)
    throw err
  }
}

async function join(options: JoinOptions, lieAboutFiles = false): Promise<WeftNode> {
  markPhase('join')
  checkJoinOptions(options)
  const servers = checkSignalUrls(options.signal)
  checkMixedContent(globalThis.location?.protocol, servers)
  // The first server's socket and challenge need no identity: under way while the checks and the
  // identity's load (or making, with its puzzle) take their time (join time, issue 14).
  const pre = typeof WebSocket === 'function' ? preconnect(io as never, servers[0] as string) : undefined
  try {
    return await joinWith(options, lieAboutFiles, pre)
  } catch (err) {
    pre?.close()
    throw err
  }
}

async function joinWith(
  options: JoinOptions,
  lieAboutFiles: boolean,
  preconnection: Preconnection | undefined,
): Promise<WeftNode> {
  // The identity loads while the browser is checked; a missing feature is still what the caller is told.
  const puzzleBits = checkPuzzleBits(options.puzzleBits ?? DEFAULT_PUZZLE_BITS)
  // The first offer is made as soon as the certificate is read, while the identity loads and the
  // server's challenge comes (the main thread is mostly waiting then; making the RTCPeerConnection
  // holds it 15-40 ms): the first dial sends it at once (native-peer.ts, join time, issue 14).
  let early: RTCCertificate | undefined
  let failed = false
  // A certificate made after the identity loaded without one (past CERT_WAIT_MS) is no node's.
  let loaded = false
  const loading = loadBrowserIdentity(puzzleBits, (cert) => {
    if (options.relay === 'force' || early || failed || loaded) return
    early = cert
    prewarmOffer(cert)
  })
  loading.then(
    () => {
      loaded = true
    },
    () => {},
  )
  // A join that fails takes its offer made ahead with it.
  const dropEarly = () => {
    failed = true
    if (early) dropWarmOffer(early)
  }
  let opts = options
  try {
    const { webrtc } = await checkBrowser(globalThis)
    if (!webrtc) {
      // WebRTC turned off (a privacy setting, a policy): every link goes through the server's relay.
      if (options.relay === 'never')
        throw new UnsupportedError(
          'WebRTC',
          "this browser has no WebRTC (RTCPeerConnection), and relay: 'never' allows no other kind of link",
        )
      opts = { ...options, relay: 'force' }
    }
  } catch (err) {
    // The identity's slot (its Web Lock) goes back when the load finishes.
    loading.then(
      ({ release }) => release(),
      () => {},
    )
    dropEarly()
    throw err
  }
  markPhase('checked')
  // With this page's DTLS certificate (native-peer.ts), saved beside the identity.
  const {
    identity,
    release,
    slot,
    certificate: cert,
  } = await loading.catch((err) => {
    dropEarly()
    throw err
  })
  markPhase('identity')
  const node = new OverlayNode(
    {
      SimplePeer: cert ? withCertificate(cert) : NativePeer,
      io: io as never,
      identity,
      release,
      storage: idbStorage(slot),
      fileStore: 'indexeddb',
      ...(lieAboutFiles ? { lieAboutFiles } : {}),
      ...(preconnection ? { preconnection } : {}),
      // The first offer, if not made as the certificate was read: as the registration goes out.
      ...(cert ? { prewarm: firstTimeOnly(() => prewarmOffer(cert)) } : {}),
    },
    opts,
  )
  // An offer made ahead that no dial took goes with the node.
  if (cert) node.on('closed', () => dropWarmOffer(cert))
  try {
    await node.start()
  } catch (err) {
    await node.close()
    throw err
  }
  // Best effort: the last changes reach IndexedDB before the page goes (peers fill any gap later).
  const flush = () => void node.save()
  addEventListener('pagehide', flush)
  node.on('closed', () => removeEventListener('pagehide', flush))
  return new NodeFacade(node)
}

/** `fn`, called the first time only (a re-registration later makes no offer ahead). */
function firstTimeOnly(fn: () => void): () => void {
  let done = false
  return () => {
    if (done) return
    done = true
    fn()
  }
}
