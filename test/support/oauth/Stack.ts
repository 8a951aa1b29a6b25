/**
 * The whole OAuth stack for tests, as the daemon wires it: the store (memory, or a sealed SQLite file), the
 * Switchboard service, the `OAuthStateStore` beside it, the SDK-based `OAuthClient` through the SSRF guard, the
 * `OAuth` service, and the proxy and MCP tools with the OAuth refresh hook.
 */
import * as HttpAdapter from "@switchboard/adapters/http"
import * as McpAdapter from "@switchboard/adapters/mcp"
import * as Memory from "@switchboard/adapters/memory"
import * as OAuthAdapter from "@switchboard/adapters/oauth"
import * as Sodium from "@switchboard/adapters/sodium"
import * as Sqlite from "@switchboard/adapters/sqlite"
import * as OAuth from "@switchboard/core/OAuth"
import type { OAuthStateStore } from "@switchboard/core/OAuthStateStore"
import * as Proxy from "@switchboard/core/Proxy"
import { Sealer } from "@switchboard/core/Sealer"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Tools from "@switchboard/core/Tools"
import type { AuditLog } from "@switchboard/core/AuditLog"
import type { ConnectionStore } from "@switchboard/core/ConnectionStore"
import type { CredentialVault } from "@switchboard/core/CredentialVault"
import * as Layer from "effect/Layer"

export const testKey = Uint8Array.from({ length: 32 }, (_, i) => (i * 29 + 7) & 0xff)

export interface StackOptions {
  /** A SQLite file (sealed under `testKey`); memory when absent. */
  readonly filename?: string | undefined
  readonly redirectUri?: string | undefined
  readonly client?: OAuthAdapter.Client.Options | undefined
}

export type StackServices =
  | Switchboard.Switchboard
  | OAuth.OAuth
  | Proxy.Proxy
  | Tools.Tools
  | OAuthStateStore
  | CredentialVault
  | ConnectionStore
  | AuditLog

const storesLayer = (filename: string | undefined) => {
  if (filename === undefined) return Layer.merge(Memory.layer, OAuthAdapter.StateStore.layerMemory)
  const sealer = Layer.effect(Sealer, Sodium.Sealer.make).pipe(Layer.provide(Sodium.KeyProvider.layerMemory(testKey)))
  const database = Sqlite.Database.layer({ filename, schemaVersion: Sqlite.Migrations.latestVersion })
  return Layer.mergeAll(Sqlite.Store.layerFromDatabase(), OAuthAdapter.StateStore.layerSqlite).pipe(
    Layer.provide(Layer.merge(database, sealer))
  )
}

export const stack = (options: StackOptions = {}) => {
  const stores = storesLayer(options.filename)
  const base = Switchboard.layer.pipe(Layer.provideMerge(stores))
  const client = OAuthAdapter.Client.layer(options.client).pipe(Layer.provide(HttpAdapter.Resolver.layer))
  const oauth = OAuth.layer({ redirectUri: options.redirectUri }).pipe(Layer.provide(client), Layer.provideMerge(base))
  const calls = Layer.mergeAll(Proxy.layer, Tools.layer).pipe(
    Layer.provide(
      Layer.mergeAll(HttpAdapter.Upstream.layer, McpAdapter.layer({ connectTimeout: "20 seconds" })).pipe(
        Layer.provide(HttpAdapter.Resolver.layer)
      )
    ),
    Layer.provide(OAuth.refresherLayer)
  )
  return calls.pipe(Layer.provideMerge(oauth))
}
