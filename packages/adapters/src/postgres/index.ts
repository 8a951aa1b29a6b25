/**
 * The PostgreSQL adapter, for a team server: one database shared by several daemons, holding every store port
 * (connectors, credentials, connections, audit and its chain, OAuth state and refresh leases), secrets sealed per
 * row, every row scoped to its org. `layer({ url })` is what the daemon builds on; `ToolPins.layer`,
 * `ApiKeyStore.layer` and `BundleStore.layer` add those ports on the same pool (with `layerWithDatabase`, or
 * `Database.layer` shared).
 */
export * as ApiKeyStore from "./ApiKeyStore.ts"
export * as BundleStore from "./BundleStore.ts"
export * as Database from "./Database.ts"
export * as Migrations from "./Migrations.ts"
export * as Store from "./Store.ts"
export * as ToolPins from "./ToolPins.ts"
export { layer, layerFromDatabase, layerWithDatabase, rotateKey } from "./Store.ts"
export type { Options, Stores } from "./Store.ts"
