/**
 * The packet guard at the decoder level: what an honest client encodes
 * decodes as before; the memory attack (a binary header announcing an
 * attachment that never comes) and every other out-of-bounds packet is
 * refused before it is parsed or held, counted by reason; an unfinished
 * binary packet is freed at its deadline.
 */
import { Encoder, type Packet, PacketType } from 'socket.io-parser'
import { describe, expect, it } from 'vitest'
import { createPacketGuard, inspectPacket, type PacketRefusal } from './packet-guard.ts'

function setup(over: Partial<{ binaryDeadlineMs: number; maxPendingBinaryBytes: number }> = {}) {
  const refused: PacketRefusal[] = []
  const guard = createPacketGuard(
    { signalMaxBytes: 16384, binaryDeadlineMs: 10_000, maxPendingBinaryBytes: 1 << 20, ...over },
    (r) => refused.push(r),
  )
  const decoder = () => {
    const d = new guard.parser.Decoder()
    const out: Packet[] = []
    d.on('decoded', (p: Packet) => out.push(p))
    return { d, out }
  }
  return { guard, refused, decoder }
}

/** What socket.io-client sends for `emit(event, payload)` (with an ack id when `id` is given). */
const encode = (data: unknown[], id?: number): (string | Buffer)[] =>
  new Encoder().encode({ type: PacketType.EVENT, nsp: '/', data, ...(id === undefined ? {} : { id }) }) as (
    | string
    | Buffer
  )[]

const feed = (d: { add(x: unknown): void }, parts: (string | Buffer)[]) => {
  for (const p of parts) d.add(p)
}

/** The attack: `51-["peers",[{},{},…],{"_placeholder":true,"num":0}]`, `chars` long. */
function peersBomb(chars: number): string {
  const head = '51-["peers",['
  const tail = '],{"_placeholder":true,"num":0}]'
  const n = Math.floor((chars - head.length - tail.length + 1) / 3)
  return `${head}${Array.from({ length: n }, () => '{}').join(',')}${tail}`
}

describe('packet guard', () => {
  it('reads the head of a packet without parsing it', () => {
    expect(inspectPacket('217["signal",{"to":"x"}]')).toEqual({
      type: 2,
      attachments: 0,
      event: 'signal',
      dataStart: 3,
    })
    expect(inspectPacket('52-/admin,17["register",{}]')).toMatchObject({
      type: 5,
      attachments: 2,
      event: 'register',
    })
    expect(inspectPacket('2["re\\u0067ister"]')?.event).toBeNull()
    expect(inspectPacket('2[42]')?.event).toBeNull()
    expect(inspectPacket('0')).toMatchObject({ type: 0, event: null })
    for (const bad of [
      '',
      '9',
      '5x-[]',
      '5-[]',
      '51234-[]',
      `2${'1'.repeat(20)}[]`,
      `2/${'n'.repeat(200)},[]`,
    ])
      expect(inspectPacket(bad)).toBeNull()
  })

  it('decodes what an honest client sends, binary attachments included', () => {
    const { decoder, refused, guard } = setup()
    const { d, out } = decoder()
    const key = new Uint8Array(32).fill(1)
    const sig = new Uint8Array(64).fill(2)
    feed(d, encode(['register', { publicKey: key, network: 'demo', signature: sig }], 0))
    feed(d, encode(['relay', { to: 'a'.repeat(40), frame: new Uint8Array(65536) }]))
    feed(d, encode(['relay', { to: 'a'.repeat(40), frame: new Uint8Array(0) }]))
    feed(d, encode(['signal', { to: 'a'.repeat(40), data: { sdp: 'x'.repeat(15_000) } }], 1))
    feed(d, encode(['peers', { max: 16 }], 2))
    d.add('0')
    expect(refused).toEqual([])
    expect(out.map((p) => p.data?.[0] ?? p.type)).toEqual([
      'register',
      'relay',
      'relay',
      'signal',
      'peers',
      0,
    ])
    const reg = out[0]?.data?.[1] as { publicKey: Uint8Array; signature: Uint8Array }
    expect(new Uint8Array(reg.publicKey)).toEqual(key)
    expect(new Uint8Array(reg.signature)).toEqual(sig)
    expect(guard.pendingBytes()).toBe(0)
    expect(guard.pendingPackets()).toBe(0)
  })

  it("refuses the issue's header at once, large or small, and holds nothing", () => {
    const { decoder, refused, guard } = setup()
    expect(() => decoder().d.add(peersBomb(127 * 1024))).toThrow()
    expect(() => decoder().d.add(peersBomb(200))).toThrow()
    expect(refused).toEqual(['too-large', 'binary-not-allowed'])
    expect(guard.pendingBytes()).toBe(0)
  })

  it('refuses every other packet out of bounds, by reason', () => {
    const cases: [string, (string | Buffer)[], PacketRefusal][] = [
      ['binary on signal', encode(['signal', { to: 'a', data: new Uint8Array(4) }], 1), 'binary-not-allowed'],
      ['binary on an unknown event', encode(['hello', new Uint8Array(4)]), 'binary-not-allowed'],
      ['binary ack', ['61-0[{"_placeholder":true,"num":0}]'], 'bad-type'],
      ['connect error', ['4"x"'], 'bad-type'],
      ['register with three attachments', ['53-["register",{}]'], 'too-many-attachments'],
      [
        'relay with two attachments',
        encode(['relay', { to: 'a', frame: new Uint8Array(1), x: new Uint8Array(1) }]),
        'too-many-attachments',
      ],
      [
        'register attachment over 256 bytes',
        encode(
          ['register', { publicKey: new Uint8Array(257), network: 'n', signature: new Uint8Array(64) }],
          0,
        ),
        'attachment-too-large',
      ],
      [
        'register header of many values',
        [`52-0["register",{"a":[${Array.from({ length: 100 }, () => '1').join(',')}]}]`],
        'too-complex',
      ],
      ['register header over 8 KiB', [`52-0["register",{"a":"${'x'.repeat(8200)}"}]`], 'too-large'],
      ['signal over its bound', encode(['signal', { to: 'a', data: 'x'.repeat(17_500) }], 1), 'too-large'],
      ['peers over 1 KiB', encode(['peers', { max: 'x'.repeat(2000) }], 1), 'too-large'],
      ['unknown event over 1 KiB', encode(['x'.repeat(5000)]), 'too-large'],
      [
        'plaintext while waiting for attachments',
        ['51-["relay",{"frame":{"_placeholder":true,"num":0}}]', '2["peers"]'],
        'malformed',
      ],
      ['an attachment nobody announced', [Buffer.alloc(4)], 'malformed'],
      ['not JSON', ['2["peers",{]'], 'malformed'],
      ['a reserved event name', ['2["disconnect"]'], 'malformed'],
    ]
    for (const [what, parts, reason] of cases) {
      const { decoder, refused, guard } = setup()
      const { d, out } = decoder()
      expect(() => feed(d, parts), what).toThrow()
      expect(refused, what).toEqual([reason])
      expect(out, what).toEqual([])
      expect(guard.pendingBytes(), what).toBe(0)
    }
  })

  it('frees an unfinished binary packet at its deadline and asks socket.io to close the connection', async () => {
    const { decoder, refused, guard } = setup({ binaryDeadlineMs: 50 })
    const { d, out } = decoder()
    const header =
      '52-0["register",{"publicKey":{"_placeholder":true,"num":0},"network":"n","signature":{"_placeholder":true,"num":1}}]'
    d.add(header)
    d.add(Buffer.alloc(32))
    expect(guard.pendingPackets()).toBe(1)
    expect(guard.pendingBytes()).toBe(header.length + 32)
    const closed = new Promise<Packet>((resolve) => d.on('decoded', resolve))
    const p = await closed
    expect(p.type).toBe(PacketType.CONNECT_ERROR)
    expect(refused).toEqual(['binary-timeout'])
    expect(out.map((x) => x.type)).toEqual([PacketType.CONNECT_ERROR])
    expect(guard.pendingBytes()).toBe(0)
    expect(guard.pendingPackets()).toBe(0)
    // Destroyed with the connection: nothing left, nothing counted twice.
    d.destroy()
    expect(refused).toEqual(['binary-timeout'])
  })

  it('large headers share maxPendingBinaryBytes; closing a connection gives its share back; small ones always pass', () => {
    const { decoder, refused, guard } = setup({ maxPendingBinaryBytes: 2500 })
    // An older client's register, listing servers: over 1 KiB.
    const large = `52-0["register",{"publicKey":{"_placeholder":true,"num":0},"network":"n","signature":{"_placeholder":true,"num":1},"servers":["https://${'s'.repeat(1200)}.example"]}]`
    const small =
      '52-0["register",{"publicKey":{"_placeholder":true,"num":0},"network":"n","signature":{"_placeholder":true,"num":1}}]'
    const first = decoder().d
    first.add(large)
    expect(() => decoder().d.add(large)).toThrow()
    expect(refused).toEqual(['busy'])
    // The budget is full of large headers; a current client's small one is still taken.
    for (let i = 0; i < 20; i++) decoder().d.add(small)
    expect(guard.pendingPackets()).toBe(21)
    expect(refused).toEqual(['busy'])
    first.destroy()
    expect(guard.pendingBytes()).toBe(20 * small.length)
    decoder().d.add(large)
    expect(guard.pendingPackets()).toBe(21)
  })
})
