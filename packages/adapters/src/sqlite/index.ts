/** The SQLite adapter: one database file (WAL, migrations) holding every store port, secrets sealed per row. */
export * as ApiKeyStore from "./ApiKeyStore.ts"
export * as AuditChain from "./AuditChain.ts"
export * as BundleStore from "./BundleStore.ts"
export * as Database from "./Database.ts"
export * as Migrations from "./Migrations.ts"
export * as Store from "./Store.ts"
export * as ToolPins from "./ToolPins.ts"
export { layer, layerMemory, layerWithDatabase, rotateKey } from "./Store.ts"
