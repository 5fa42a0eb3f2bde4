/**
 * The measurements of bench/crypto.ts, written once and run twice: in Node
 * as it is, and in Chromium bundled with shared/crypto into one script (so
 * it imports nothing from Node). The leading underscore keeps
 * scripts/bench.mjs from running it as a benchmark of its own.
 */
import {
  contentAad,
  createBoxKeyPair,
  createChannelKeys,
  createOpener,
  createSealer,
  DEFAULT_NETWORK_ITERATIONS,
  deriveChannel,
  deriveNetworkKeys,
  linkTranscript,
} from '../shared/crypto/index.ts'

export interface SuiteOptions {
  /** A clock in ms (performance.now). */
  now(): number
  /** Samples per per-message figure. @default 2000 */
  samples?: number
  /** Bytes moved through the channel per throughput figure. @default 32 MiB */
  channelBytes?: number
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? Number.NaN
}

const round = (x: number, digits = 3) => Number(x.toFixed(digits))

function filled(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff
  return b
}

/** p50, p90 and mean of `f` over `samples` sequential runs (after a warm-up), in ms. */
async function timeEach(now: () => number, samples: number, f: (i: number) => Promise<unknown>) {
  for (let i = 0; i < Math.min(200, samples); i++) await f(i)
  const t: number[] = []
  const t0 = now()
  for (let i = 0; i < samples; i++) {
    const s = now()
    await f(i)
    t.push(now() - s)
  }
  const mean = (now() - t0) / samples
  return { p50: round(quantile(t, 0.5)), p90: round(quantile(t, 0.9)), mean: round(mean) }
}

export async function runCryptoSuite(opts: SuiteOptions): Promise<Record<string, unknown>> {
  const now = opts.now
  const samples = opts.samples ?? 2000
  const out: Record<string, unknown> = {}

  // ---- routed envelopes: a 256-byte body (a typical request), aad as the router would bind it ----
  const box = await createBoxKeyPair()
  const body = filled(256, 1)
  const aad = new TextEncoder().encode(
    `${'a'.repeat(40)}\n${'b'.repeat(40)}\n0011223344556677\n1700000000000`,
  )
  const sealer = createSealer()
  const opener = createOpener(box)
  const sealed = await Promise.all(Array.from({ length: 256 }, () => sealer.seal(box.publicKey, body, aad)))
  out.envelopeSealMs = await timeEach(now, samples, () => sealer.seal(box.publicKey, body, aad))
  out.envelopeOpenMs = await timeEach(now, samples, (i) =>
    opener.open((sealed[i % 256] ?? sealed[0])?.bytes ?? body, aad),
  )
  out.envelopeSealOpenMs = await timeEach(now, samples, async () => {
    const m = await sealer.seal(box.publicKey, body, aad)
    return opener.open(m.bytes, aad)
  })
  const opened = await opener.open(sealed[0]?.bytes ?? body, aad)
  if (!opened) throw new Error('bench: an envelope did not open')
  const reply = await opened.sealReply(body, aad)
  out.replySealOpenMs = await timeEach(now, samples, async () => {
    const r = await opened.sealReply(body, aad)
    return sealed[0]?.openReply(r, aad)
  })
  if (!(await sealed[0]?.openReply(reply, aad))) throw new Error('bench: a reply did not open')
  // Without the session cache every message is a new exchange on both sides: what the cache saves.
  out.envelopeFirstMessageMs = await timeEach(now, Math.min(samples, 500), async () => {
    const m = await createSealer().seal(box.publicKey, body, aad)
    return createOpener(box).open(m.bytes, aad)
  })

  // ---- the secure channel: link setup, then 16 KiB frames ----
  const th = new Uint8Array(32).fill(7)
  out.channelSetupMs = await timeEach(now, Math.min(samples, 300), async () => {
    const [a, b] = await Promise.all([createChannelKeys(), createChannelKeys()])
    const t = await linkTranscript({
      transport: 'relay',
      network: 'bench',
      ends: [
        { id: 'a'.repeat(40), nonce: th, ephemeral: a.publicKey, fingerprint: '' },
        { id: 'b'.repeat(40), nonce: th, ephemeral: b.publicKey, fingerprint: '' },
      ],
    })
    return Promise.all([
      deriveChannel({ mine: a, theirs: b.publicKey, transcript: t }),
      deriveChannel({ mine: b, theirs: a.publicKey, transcript: t }),
    ])
  })
  const [ka, kb] = await Promise.all([createChannelKeys(), createChannelKeys()])
  const ab = await deriveChannel({ mine: ka, theirs: kb.publicKey, transcript: th })
  const ba = await deriveChannel({ mine: kb, theirs: ka.publicKey, transcript: th })
  if (!ab || !ba) throw new Error('bench: no channel')
  const frame = filled(16 * 1024, 2)
  const marker = new Uint8Array([0xc2])
  const total = opts.channelBytes ?? 32 * 1024 * 1024
  const frames = Math.ceil(total / frame.length)
  // One frame at a time: seal, then open (the latency-bound worst case).
  let t0 = now()
  for (let i = 0; i < frames; i++) {
    const p = await ba.open(await ab.seal(frame, marker), marker)
    if (!p) throw new Error('bench: a frame did not open')
  }
  const sequentialMs = now() - t0
  // Pipelined as a link writes: up to 16 frames sealed ahead, opened in order.
  t0 = now()
  for (let i = 0; i < frames; i += 16) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(16, frames - i) }, () => ab.seal(frame, marker)),
    )
    const opened16 = await Promise.all(batch.map((f) => ba.open(f, marker)))
    if (opened16.some((p) => !p)) throw new Error('bench: a frame did not open')
  }
  const pipelinedMs = now() - t0
  const mb = (frames * frame.length) / 1e6
  out.channel16KiB = {
    frames,
    sequentialMBps: round(mb / (sequentialMs / 1000), 1),
    pipelinedMBps: round(mb / (pipelinedMs / 1000), 1),
    perFrameSealOpenMs: round(sequentialMs / frames),
  }

  // ---- private networks ----
  t0 = now()
  const net = await deriveNetworkKeys('bench', 'correct horse battery staple')
  out.networkDeriveMs = round(now() - t0, 1)
  out.networkIterations = DEFAULT_NETWORK_ITERATIONS
  out.admissionProveCheckMs = await timeEach(now, Math.min(samples, 1000), async () => {
    const tag = await net.admissionProof(th, 'a'.repeat(40))
    return net.checkAdmission(th, 'a'.repeat(40), tag)
  })
  const caad = contentAad('broadcast', 'chat', 'a'.repeat(40), '1')
  const kib = filled(1024, 3)
  out.contentSealOpen1KiBMs = await timeEach(now, samples, async () => {
    const s = await net.sealContent('a'.repeat(40), kib, caad)
    return net.openContent('a'.repeat(40), s, caad)
  })
  return out
}
