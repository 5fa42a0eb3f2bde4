/**
 * The demo page loads the library the way an embedding site does, from the
 * server's `/weft.mjs` (kept external by vite.config.ts). This gives that URL
 * the types of the browser entry so the page typechecks. (A pattern, because
 * TypeScript never matches a rooted name like '/weft.mjs' against an exact
 * ambient module name; and an ambient module may not re-export a relative
 * path, hence `typeof import(...)`.)
 */
declare module '*/weft.mjs' {
  export const joinOverlay: typeof import('../browser.ts').joinOverlay
}
