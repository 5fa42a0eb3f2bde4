export * from './errors.ts'
export type { Value } from './types.ts'
