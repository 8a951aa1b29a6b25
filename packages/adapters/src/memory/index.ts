/** The in-memory adapter. */
export * as ApiKeyStore from "./ApiKeyStore.ts"
export * as Store from "./Store.ts"
export * as ToolPins from "./ToolPins.ts"
export { layer } from "./Store.ts"
