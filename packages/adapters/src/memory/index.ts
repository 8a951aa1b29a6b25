/** The in-memory adapter. */
export * as Store from "./Store.ts"
export { layer } from "./Store.ts"
