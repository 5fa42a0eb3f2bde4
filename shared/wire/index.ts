export {
  CHUNK_BYTES,
  CHUNK_HEADER_BYTES,
  CHUNK_MARKER,
  CHUNK_PAYLOAD_BYTES,
  ChunkDropReason,
  createReassembler,
  type Reassembler,
  type ReassemblerOptions,
  type ReassemblerStats,
  splitMessage,
} from './chunk.ts'
export {
  COMPRESS_MIN_BYTES,
  DEFAULT_MAX_MESSAGE_BYTES,
  type DecodeFrameOptions,
  decodeFrame,
  type EncodeFrameOptions,
  encodeFrame,
  FLAG_DEFLATE,
  FRAME_HEADER_BYTES,
  type Frame,
  FrameDecodeError,
  isKind,
  Kind,
  WIRE_VERSION,
} from './frame.ts'
export { decodeValue, decodeValueResult, encodeValue, MAX_VALUE_DEPTH } from './value.ts'
