export * from './entry.ts'
export * from './errors.ts'
export * from './messages.ts'
export * from './sync.ts'
