export * from './keys.ts'
export * from './puzzle.ts'
