export * from './messages.ts'
export * from './outbox.ts'
export * from './router.ts'
export * from './served.ts'
