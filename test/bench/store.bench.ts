/**
 * The sealed SQLite store under the `Switchboard` service, in process:
 * - credential resolve: `Switchboard.resolveCall` (the connection, its connector and the credential read from
 *   SQLite, the credential unsealed, the outgoing auth built; the connection's own sealed secrets too when its
 *   record says it has some) against the same reads done by hand: raw better-sqlite3 prepared selects of the same
 *   rows, `JSON.parse`, raw libsodium opens of the same sealed values, the `Authorization` header built.
 *   Targets: p50 ≤ 50 µs and ≤ 2× raw.
 * - a page of 100 connectors (`Switchboard.listConnectors` after a random cursor) in stores of 1k, 10k and 100k
 *   connectors, against itself at 1k. Keyset pagination searches an index, O(log n): target ≤ 1.5× at 100k.
 */
/* oxlint-disable no-await-in-loop -- a benchmark measures one thing at a time, on purpose */
import * as Sqlite from "@switchboard/adapters/sqlite"
import { KeyProvider, Sealer } from "@switchboard/adapters/sodium"
import * as Connector from "@switchboard/core/Connector"
import * as Cursor from "@switchboard/core/Cursor"
import * as Principal from "@switchboard/core/Principal"
import { Sealer as SealerPort } from "@switchboard/core/Sealer"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import { atMost, interleaved, latencyRow, report, type Row, seconds } from "./harness.ts"

const began = performance.now()
const CONNECTORS_FOR_RESOLVE = 100
const CONNECTIONS_FOR_RESOLVE = 1_000
const SIZES = [1_000, 10_000, 100_000] as const
const AT = "2025-01-01T00:00:00.000Z"

interface Statement {
  readonly get: (...params: ReadonlyArray<unknown>) => unknown
  readonly run: (...params: ReadonlyArray<unknown>) => unknown
}
interface RawDatabase {
  readonly prepare: (sql: string) => Statement
  readonly transaction: (fn: () => void) => () => void
  readonly close: () => void
}
type RawDatabaseClass = new (filename: string, options?: { readonly readonly?: boolean }) => RawDatabase
interface RawSodium {
  readonly ready: Promise<void>
  readonly crypto_aead_xchacha20poly1305_ietf_decrypt: (
    secretNonce: null,
    ciphertext: Uint8Array,
    additionalData: Uint8Array,
    publicNonce: Uint8Array,
    key: Uint8Array
  ) => Uint8Array
}

// The raw libraries the adapters use, resolved from the adapters package (the test package does not depend on them).
const requireFromAdapters = createRequire(import.meta.resolve("@switchboard/adapters/sqlite"))
const RawSqlite = requireFromAdapters("better-sqlite3") as RawDatabaseClass
const sodium = requireFromAdapters("libsodium-wrappers-sumo") as RawSodium
await sodium.ready

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sb-bench-store-"))
process.on("exit", () => Fs.rmSync(dir, { recursive: true, force: true }))

const key = new Uint8Array(32).map((_, i) => (i * 29 + 3) & 0xff)
const sealer = await Effect.runPromise(Sealer.make.pipe(Effect.provide(KeyProvider.layerMemory(key))))

/** A Switchboard on its own SQLite file, run by a runtime kept for the whole bench. */
const open = async (file: string) => {
  const layer = Switchboard.layer.pipe(
    Layer.provide(Sqlite.layer({ filename: file }).pipe(Layer.provide(Layer.succeed(SealerPort, sealer))))
  )
  const runtime = ManagedRuntime.make(layer)
  const sb = await runtime.runPromise(Effect.service(Switchboard.Switchboard))
  return { runtime, sb }
}

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runSync(effect)

// ---------------------------------------------------------------------------------------------------------------
// Credential resolve

const resolveFile = Path.join(dir, "resolve.db")
const resolveStore = await open(resolveFile)
const principal = Principal.local("local")
const connectionIds: Array<string> = []
await resolveStore.runtime.runPromise(
  Effect.gen(function* () {
    const sb = resolveStore.sb
    for (let c = 0; c < CONNECTORS_FOR_RESOLVE; c++) {
      yield* sb.createConnector({
        name: `api-${c}`,
        display_name: `API ${c}`,
        auth_patterns: [
          {
            type: "BEARER",
            fields: [
              { field_name: "token", input_type: "password", required: true },
              { field_name: "region", required: true }
            ]
          }
        ],
        proxy_url: "https://{{region}}.api.example.com/v1",
        proxy_enabled: true
      })
      yield* sb.setCredential(`api-${c}`, "user", {
        values: { token: `ghp_${c}_0123456789abcdefghijklmnopqrstuvwxyz`, region: "eu" }
      })
    }
    for (let i = 0; i < CONNECTIONS_FOR_RESOLVE; i++) {
      const connection = yield* sb.createConnection(`api-${i % CONNECTORS_FOR_RESOLVE}`, { name: `conn-${i}` })
      connectionIds.push(connection.id)
    }
  }).pipe(Effect.provideService(Principal.CurrentPrincipal, principal))
)
console.log(`  seeded ${CONNECTIONS_FOR_RESOLVE} connections (${seconds(began)})`)

const raw = new RawSqlite(resolveFile, { readonly: true })
const rawConnection = raw.prepare("SELECT record, key_id, sealed FROM connections WHERE org = ? AND id = ?")
const rawConnector = raw.prepare("SELECT record FROM connectors WHERE org = ? AND id = ?")
const rawCredential = raw.prepare(
  "SELECT id, key_id, sealed FROM credentials WHERE connector_id = ? AND scope = ? AND owner_org = ? AND owner_workspace = ? AND owner_user = ? AND name = ?"
)
const decoder = new TextDecoder()
const rawOpen = (table: string, rowId: string, keyId: string, bytes: Uint8Array): unknown =>
  JSON.parse(
    decoder.decode(
      sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
        null,
        bytes.subarray(25),
        Sealer.associatedData({ table, rowId }, keyId),
        bytes.subarray(1, 25),
        key
      )
    )
  )

/** The reads `resolveCall` makes, by hand. */
const resolveByHand = (id: string): string => {
  const row = rawConnection.get(principal.org, id) as { record: string; key_id: string; sealed: Uint8Array }
  const connection = JSON.parse(row.record) as {
    connector_id: string
    owner: string
    has_security: boolean
    header_names: ReadonlyArray<string>
  }
  if (connection.has_security || connection.header_names.length > 0) rawOpen("connections", id, row.key_id, row.sealed)
  const connector = JSON.parse(
    (rawConnector.get(principal.org, connection.connector_id) as { record: string }).record
  ) as { id: string }
  const credential = rawCredential.get(connector.id, "user", principal.org, "", connection.owner, "default") as {
    id: string
    key_id: string
    sealed: Uint8Array
  }
  const values = rawOpen("credentials", credential.id, credential.key_id, credential.sealed) as { token: string }
  return `Bearer ${values.token}`
}

// Both resolve the same connection to the same header.
const probe = run(resolveStore.sb.resolveCall(connectionIds[0] as string))
const header = Object.values(probe.auth.headers)[0]
if (header === undefined || resolveByHand(connectionIds[0] as string) !== Redacted.value(header)) {
  throw new Error("the raw resolve does not build the header the service builds")
}

let next = 0
const pick = () => connectionIds[next++ % connectionIds.length] as string
const resolveSummaries = await interleaved(
  [
    { name: "Switchboard.resolveCall", fn: () => run(resolveStore.sb.resolveCall(pick())) },
    { name: "raw select + open", fn: () => resolveByHand(pick()) }
  ],
  { rounds: 10, sliceMs: 300, warmupMs: 500, sync: true }
)
raw.close()
const rows: Array<Row> = [
  latencyRow(resolveSummaries, {
    id: "credential_resolve",
    figure: "credential resolve (3 rows read, credential unsealed, auth built)",
    subject: "Switchboard.resolveCall",
    baseline: "raw select + open",
    target: (ratio, s) => ({ text: "p50 ≤ 50 µs, ≤ 2×", met: s.p50 <= 50 && ratio <= 2 })
  })
]
report(rows)
await resolveStore.runtime.dispose()
console.log(`  credential resolve done (${seconds(began)})`)

// ---------------------------------------------------------------------------------------------------------------
// Connector list pages at 1k, 10k, 100k

const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
/** A well-formed id; spread over the id space so keyset pages land all over the index. */
const id = (prefix: string, n: number) => {
  let out = ""
  let rest = Math.imul(n + 1, 2_654_435_761) >>> 0
  for (let i = 0; i < 26; i++) {
    out = alphabet[(rest + i * 7 + n) % 32] + out
    rest = Math.floor(rest / 3) + n
  }
  return `${prefix}_${out}`
}

const connector = (n: number): Connector.Connector => ({
  id: id("ctr", n),
  name: `connector-${n}`,
  display_name: `Connector ${n}`,
  kind: n % 2 === 0 ? "http" : "mcp",
  proxy_url: "https://api.example.com/{{region}}/v1",
  auth_patterns: [
    {
      type: "BEARER",
      fields: [{ field_name: "token", input_type: "password", required: true }],
      account_fields: [{ field_name: "region" }]
    }
  ],
  metadata: { team: "platform" },
  visibility: "private",
  version: 1,
  created_at: AT,
  updated_at: AT
})
const encodeConnector = Schema.encodeSync(Connector.Connector)

/**
 * A store of `size` connectors. The first is created through the service; the rest are written in one raw
 * transaction (a hundred thousand one-transaction inserts would take most of the time budget) in the same form
 * the store writes, which the pages below decode with the connector schema.
 */
const seedList = async (size: number) => {
  const file = Path.join(dir, `list-${size}.db`)
  const store = await open(file)
  const first = await store.runtime.runPromise(
    store.sb.createConnector({ name: "connector-first", display_name: "First", proxy_url: "https://example.com" })
  )
  const db = new RawSqlite(file)
  const stored = (db.prepare("SELECT record FROM connectors WHERE id = ?").get(first.id) as { record: string }).record
  if (stored !== JSON.stringify(encodeConnector(first))) throw new Error("the store writes connectors in another form")
  const insert = db.prepare("INSERT INTO connectors (id, org, name, kind, version, record) VALUES (?, ?, ?, ?, 1, ?)")
  const version = db.prepare("INSERT INTO connector_versions (connector_id, version, record) VALUES (?, 1, ?)")
  const ids: Array<string> = [first.id]
  db.transaction(() => {
    for (let n = 1; n < size; n++) {
      const c = connector(n)
      const record = JSON.stringify(encodeConnector(c))
      insert.run(c.id, principal.org, c.name, c.kind, record)
      version.run(c.id, record)
      ids.push(c.id)
    }
  })()
  db.close()
  ids.sort()
  // Cursors after which a full page follows, at pseudo-random places.
  const filter = Cursor.filterKey({ kind: undefined, name_prefix: undefined })
  const cursors = Array.from({ length: 997 }, (_, i) =>
    Cursor.encode({ after: ids[(i * 7_919) % (size - 101)] as string, filter })
  )
  return { ...store, cursors }
}

const lists = []
for (const size of SIZES) lists.push({ size, ...(await seedList(size)) })
console.log(`  seeded ${SIZES.join(", ")} connectors (${seconds(began)})`)

const label = (size: number) => `page at ${size.toLocaleString("en-US")}`
const listSummaries = await interleaved(
  lists.map(({ size, sb, cursors }) => {
    let i = 0
    return {
      name: label(size),
      fn: () => {
        const page = run(sb.listConnectors({ limit: 100, cursor: cursors[i++ % cursors.length] as string }))
        if (page.data.length !== 100) throw new Error(`a page of ${page.data.length}`)
      }
    }
  }),
  { rounds: 9, sliceMs: 300, warmupMs: 300, sync: true }
)
report(
  [10_000, 100_000].map((size) =>
    latencyRow(listSummaries, {
      id: `list_page_${size}`,
      figure: `connector list page (100) at ${size.toLocaleString("en-US")}`,
      subject: label(size),
      baseline: label(1_000),
      target: size === 100_000 ? atMost(1.5) : undefined
    })
  )
)
for (const list of lists) await list.runtime.dispose()
console.log(`  list pages done (${seconds(began)})`)
