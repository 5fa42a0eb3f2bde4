/**
 * The platform shared/ may use, declared by hand: shared/tsconfig.json
 * compiles shared/ with no DOM and no Node types, so a use of `document`,
 * `window`, `process`, `Buffer` or a timer fails to compile there. What is
 * declared here exists in browsers, Node 20+ and Web Workers alike:
 * WebCrypto, TextEncoder/TextDecoder, URL, and the compression streams.
 * (Only the members shared/ uses; the main tsconfig gets the full DOM types.)
 */
export {}

type Bytes = Uint8Array<ArrayBuffer>

declare global {
  interface CryptoKey {
    readonly type: string
    readonly extractable: boolean
    readonly algorithm: { name: string }
    readonly usages: string[]
  }
  interface CryptoKeyPair {
    privateKey: CryptoKey
    publicKey: CryptoKey
  }
  interface JsonWebKey {
    kty?: string
    crv?: string
    x?: string
    d?: string
  }
  type KeyUsage =
    | 'sign'
    | 'verify'
    | 'encrypt'
    | 'decrypt'
    | 'deriveKey'
    | 'deriveBits'
    | 'wrapKey'
    | 'unwrapKey'
  type AlgorithmIdentifier = string | { name: string; [k: string]: unknown }
  interface SubtleCrypto {
    digest(algorithm: AlgorithmIdentifier, data: Bytes): Promise<ArrayBuffer>
    generateKey(
      algorithm: AlgorithmIdentifier,
      extractable: boolean,
      usages: KeyUsage[],
    ): Promise<CryptoKeyPair | CryptoKey>
    exportKey(format: 'jwk', key: CryptoKey): Promise<JsonWebKey>
    exportKey(format: 'raw' | 'pkcs8' | 'spki', key: CryptoKey): Promise<ArrayBuffer>
    importKey(
      format: 'raw' | 'pkcs8' | 'spki',
      keyData: Bytes,
      algorithm: AlgorithmIdentifier,
      extractable: boolean,
      usages: KeyUsage[],
    ): Promise<CryptoKey>
    importKey(
      format: 'jwk',
      keyData: JsonWebKey,
      algorithm: AlgorithmIdentifier,
      extractable: boolean,
      usages: KeyUsage[],
    ): Promise<CryptoKey>
    sign(algorithm: AlgorithmIdentifier, key: CryptoKey, data: Bytes): Promise<ArrayBuffer>
    verify(algorithm: AlgorithmIdentifier, key: CryptoKey, signature: Bytes, data: Bytes): Promise<boolean>
    // AES-GCM, X25519, HKDF and PBKDF2 (shared/crypto).
    encrypt(algorithm: AlgorithmIdentifier, key: CryptoKey, data: Bytes): Promise<ArrayBuffer>
    decrypt(algorithm: AlgorithmIdentifier, key: CryptoKey, data: Bytes): Promise<ArrayBuffer>
    deriveBits(algorithm: AlgorithmIdentifier, baseKey: CryptoKey, length: number): Promise<ArrayBuffer>
  }
  interface Crypto {
    readonly subtle: SubtleCrypto
    getRandomValues<T extends Uint8Array | Uint16Array | Uint32Array>(array: T): T
  }
  var crypto: Crypto

  class TextEncoder {
    encode(input?: string): Uint8Array<ArrayBuffer>
  }
  class TextDecoder {
    constructor(label?: string, options?: { fatal?: boolean; ignoreBOM?: boolean })
    decode(input?: Uint8Array, options?: { stream?: boolean }): string
  }

  class URL {
    constructor(url: string, base?: string)
    href: string
    protocol: string
    username: string
    password: string
    host: string
    hostname: string
    port: string
    pathname: string
    search: string
    hash: string
    readonly origin: string
    toString(): string
  }

  interface ReadableStreamReadResult<T> {
    done: boolean
    value: T
  }
  interface ReadableStreamDefaultReader<T> {
    read(): Promise<ReadableStreamReadResult<T>>
    cancel(reason?: unknown): Promise<void>
  }
  interface WritableStreamDefaultWriter<T> {
    write(chunk: T): Promise<void>
    close(): Promise<void>
  }
  interface ReadableStream<T> {
    getReader(): ReadableStreamDefaultReader<T>
  }
  interface WritableStream<T> {
    getWriter(): WritableStreamDefaultWriter<T>
  }
  type CompressionFormat = 'deflate' | 'deflate-raw' | 'gzip'
  class CompressionStream {
    constructor(format: CompressionFormat)
    readonly readable: ReadableStream<Uint8Array>
    readonly writable: WritableStream<Bytes>
  }
  class DecompressionStream {
    constructor(format: CompressionFormat)
    readonly readable: ReadableStream<Uint8Array>
    readonly writable: WritableStream<Bytes>
  }
}
