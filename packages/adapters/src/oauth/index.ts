/**
 * OAuth adapter: the `OAuthClient` port on the MCP SDK's client auth (through the SSRF guard) and the
 * `OAuthStateStore` port in memory and on the sealed SQLite store.
 */
export * as Client from "./Client.ts"
export * as StateStore from "./StateStore.ts"
