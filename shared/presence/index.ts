export * from './messages.ts'
export * from './presence.ts'
export {
  compareVersion,
  encodeBody,
  parseBody,
  type RecordBody,
  SIGN_DOMAIN,
  signedBytes,
  type WireRecord,
} from './record.ts'
