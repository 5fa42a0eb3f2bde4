/**
 * Privacy primitives (issue 11): a secure channel for links a third party
 * carries, sealed envelopes for routed messages, and private networks.
 * Pure: WebCrypto only, no timers, no clock (time comes in as arguments and
 * through tick(now)). The protocol is PROTOCOL-crypto.md beside this file.
 */
export * from './box-record.ts'
export * from './channel.ts'
export * from './network.ts'
export {
  type Bytes,
  IV_BYTES,
  isX25519PublicKey,
  KEY_BYTES,
  TAG_BYTES,
  type X25519KeyPair,
} from './primitives.ts'
export * from './seal.ts'
export * from './transcript.ts'
