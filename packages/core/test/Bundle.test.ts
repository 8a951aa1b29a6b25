/**
 * The pure parts of sealed bundles: the contents' consistency rules, the JSON codec (plaintext only on the way to
 * being sealed, `Redacted` once decoded), and import planning: owners given to the importing principal, ids kept
 * unless taken anywhere, free names, and the conflict modes; tool pins follow their connection's ids.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Bundle from "@switchboard/core/Bundle"
import type * as Connection from "@switchboard/core/Connection"
import type * as Connector from "@switchboard/core/Connector"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"

const CTR = "ctr_01M84PXA4Q6VRCT536D9DC3H3E"
const CONN = "conn_01M84PXA4Q6VRCT536D9DC3H3F"

const version = (v: number, name = "acme"): Connector.Connector => ({
  id: CTR,
  name,
  display_name: "Acme",
  kind: "http",
  proxy_url: "https://api.acme.test",
  auth_patterns: [],
  visibility: "private",
  version: v,
  created_at: "2026-01-01T00:00:00.000Z",
  updated_at: "2026-01-01T00:00:00.000Z"
})

const connection = (overrides: Partial<Connection.Connection> = {}): Connection.Connection => ({
  id: CONN,
  name: "prod",
  connector_id: CTR,
  connector_version: 1,
  org: "home",
  workspace: "default",
  owner: "alice",
  access_scope: "personal",
  is_service_account: false,
  auth_type: null,
  credential: { scope: "user", name: "mine" },
  parameters: {},
  servers: [],
  allow_private_network: false,
  has_security: true,
  header_names: [],
  status: "active",
  account_label: null,
  last_tested_at: null,
  last_error: null,
  created_at: "2026-01-01T00:00:00.000Z",
  updated_at: "2026-01-01T00:00:00.000Z",
  ...overrides
})

const secret = (value: string) => ({ api_key: Redacted.make(value) })

const contents: Bundle.Contents = {
  contents_version: 1,
  exported_at: "2026-01-02T00:00:00.000Z",
  source: { org: "home", workspace: "default", user: "alice" },
  connectors: [{ versions: [version(1), version(2)] }],
  credentials: [
    {
      id: "cred_01M84PXA4Q6VRCT536D9DC3H3G",
      connector_id: CTR,
      scope: "user",
      owner: { org: "home", user: "alice" },
      name: "mine",
      auth_type: null,
      values: secret("sk-user"),
      created_at: "2026-01-01T00:00:00.000Z",
      updated_at: "2026-01-01T00:00:00.000Z"
    },
    {
      id: "cred_01M84PXA4Q6VRCT536D9DC3H3H",
      connector_id: CTR,
      scope: "user",
      owner: { org: "home", user: "carol" },
      name: "mine",
      auth_type: null,
      values: secret("sk-carol"),
      created_at: "2026-01-01T00:00:00.000Z",
      updated_at: "2026-01-01T00:00:00.000Z"
    }
  ],
  connections: [{ connection: connection(), security: secret("sk-inline"), headers: {} }]
}

const toolPin: Bundle.PinEntry = {
  connector_version: 1,
  hash: "a".repeat(64),
  tools: [{ name: "echo", description: "Echo", inputSchema: { type: "object" } }],
  pinned_at: "2026-01-01T00:00:00.000Z",
  pinned_by: "trust-on-first-use"
}

const nothing: Bundle.Existing = { connectors: [], credentials: [], connections: [] }
const bob: Bundle.Target = { org: "work", workspace: "main", user: "bob" }

const reasonOf = <A, E>(exit: Exit.Exit<A, E>) => {
  if (Exit.isSuccess(exit)) return undefined
  const fail = exit.cause.reasons.find((r) => r._tag === "Fail") as { readonly error: Bundle.BundleError } | undefined
  return fail?.error.reason
}

describe("Bundle.Contents", () => {
  it("round-trips through JSON: plaintext only in the encoded form, Redacted once decoded", () => {
    const json = Schema.encodeSync(Bundle.ContentsJson)(contents)
    assert.include(JSON.stringify(json), "sk-user")
    const decoded = Schema.decodeUnknownSync(Bundle.ContentsJson)(JSON.parse(JSON.stringify(json)))
    const value = decoded.credentials[0]?.values.api_key
    assert.isTrue(value !== undefined && Redacted.isRedacted(value))
    assert.strictEqual(value === undefined ? "" : Redacted.value(value), "sk-user")
    assert.notInclude(JSON.stringify(decoded), "sk-user")
    assert.notInclude(String(decoded.connections[0]?.security.api_key), "sk-inline")
  })

  it("refuses inconsistent contents: gaps in versions, pins the bundle lacks, orphans", () => {
    const decode = (c: unknown) => Schema.decodeUnknownExit(Bundle.ContentsJson)(c)
    const json = Schema.encodeSync(Bundle.ContentsJson)(contents) as Record<string, unknown>
    assert.isTrue(Exit.isSuccess(decode(json)))
    const gap = { ...json, connectors: [{ versions: [version(1), version(3)] }] }
    const pin = {
      ...json,
      connectors: [{ versions: [version(1)] }],
      connections: [{ connection: connection({ connector_version: 2 }), security: {}, headers: {} }]
    }
    const orphan = { ...json, connectors: [] }
    const empty = { ...json, connectors: [{ versions: [] }], credentials: [], connections: [] }
    for (const bad of [gap, pin, orphan, empty]) assert.isTrue(Exit.isFailure(decode(bad)))
  })

  it("carries tool pins optionally: at most one a connector version, and only of versions in the bundle", () => {
    const decode = (c: unknown) => Schema.decodeUnknownExit(Bundle.ContentsJson)(c)
    const json = Schema.encodeSync(Bundle.ContentsJson)(contents) as Record<string, unknown>
    const withPins = (...versions: Array<number>) => ({
      ...json,
      connections: [
        {
          connection: connection(),
          security: {},
          headers: {},
          pins: versions.map((v) => ({ ...toolPin, connector_version: v }))
        }
      ]
    })
    assert.isTrue(Exit.isSuccess(decode(withPins(1, 2))))
    assert.isTrue(Exit.isSuccess(decode(withPins())))
    for (const bad of [withPins(3), withPins(0), withPins(1, 1)]) assert.isTrue(Exit.isFailure(decode(bad)))
  })
})

describe("Bundle.plan", () => {
  it.effect("gives the exporter's owners to the importing principal and keeps ids and pins", () =>
    Effect.gen(function* () {
      const plan = yield* Bundle.plan(contents, nothing, bob, "fail")
      assert.deepStrictEqual(
        plan.credentials.map((c) => c.credential.owner),
        [
          { org: "work", user: "bob" },
          { org: "work", user: "carol" }
        ]
      )
      const c = plan.connections[0]?.connection
      assert.deepStrictEqual(
        [c?.org, c?.workspace, c?.owner, c?.id, c?.connector_version],
        ["work", "main", "bob", CONN, 1]
      )
      assert.deepStrictEqual(
        plan.connectors[0]?.versions.map((v) => [v.id, v.version]),
        [
          [CTR, 1],
          [CTR, 2]
        ]
      )
    })
  )

  it.effect("tool pins take their connection's org and ids here; a bundle without pins plans none", () =>
    Effect.gen(function* () {
      const pinned = {
        ...contents,
        connections: contents.connections.map((c) => ({ ...c, pins: [toolPin, { ...toolPin, connector_version: 2 }] }))
      }
      const taken: Bundle.Existing = {
        connectors: [{ id: CTR, org: "other", name: "acme", version: 1 }],
        credentials: [],
        connections: [{ id: CONN, org: "other", name: "prod", connector_id: CTR, connector_version: 1 }]
      }
      const plan = yield* Bundle.plan(pinned, taken, bob, "rename")
      const c = plan.connections[0]?.connection as Connection.Connection
      assert.notStrictEqual(c.id, CONN)
      assert.notStrictEqual(c.connector_id, CTR)
      assert.deepStrictEqual(plan.connections[0]?.pins, [
        { ...toolPin, org: "work", connection_id: c.id, connector_id: c.connector_id },
        { ...toolPin, connector_version: 2, org: "work", connection_id: c.id, connector_id: c.connector_id }
      ])
      const older = yield* Bundle.plan(contents, nothing, bob, "fail")
      assert.isUndefined(older.connections[0]?.pins)
    })
  )

  it.effect("an id taken in another organization is a conflict for replace and a fresh id for rename", () =>
    Effect.gen(function* () {
      const elsewhere: Bundle.Existing = {
        connectors: [{ id: CTR, org: "other", name: "acme", version: 1 }],
        credentials: [],
        connections: []
      }
      assert.strictEqual(
        reasonOf(yield* Effect.exit(Bundle.plan(contents, elsewhere, bob, "replace"))),
        "bundle_conflict"
      )
      const renamed = yield* Bundle.plan(contents, elsewhere, bob, "rename")
      const id = renamed.connectors[0]?.versions[0]?.id
      assert.notStrictEqual(id, CTR)
      assert.isTrue(renamed.connectors[0]?.versions.every((v) => v.id === id && v.name === "acme"))
      assert.strictEqual(renamed.connections[0]?.connection.connector_id, id)
      assert.isTrue(renamed.credentials.every((c) => c.credential.connector_id === id))
    })
  )

  it.effect("rename follows a renamed credential from the connection that names it", () =>
    Effect.gen(function* () {
      const here: Bundle.Existing = {
        connectors: [{ id: CTR, org: "work", name: "acme", version: 2 }],
        credentials: [
          { id: "cred_local", connector_id: CTR, scope: "user", owner: { org: "work", user: "bob" }, name: "mine" }
        ],
        connections: []
      }
      // With replace the connector keeps its id here, so the credential conflicts and is replaced in place.
      const replaced = yield* Bundle.plan(contents, here, bob, "replace")
      assert.strictEqual(replaced.credentials[0]?.replaces, "cred_local")
      assert.strictEqual(replaced.credentials[0]?.credential.id, "cred_local")
      const skipped = yield* Bundle.plan(contents, here, bob, "skip")
      assert.deepStrictEqual(
        skipped.report.map((r) => `${r.kind} ${r.outcome}`),
        ["connector skipped", "credential skipped", "credential skipped", "connection skipped"]
      )
      assert.deepStrictEqual(
        [skipped.connectors.length, skipped.credentials.length, skipped.connections.length],
        [0, 0, 0]
      )
    })
  )

  it("freeName stays a valid name", () => {
    const long = "a".repeat(63)
    const taken = new Set([`${"a".repeat(61)}-2`])
    const free = Bundle.freeName(long, (n) => taken.has(n))
    assert.strictEqual(free, `${"a".repeat(61)}-3`)
    assert.strictEqual(
      Bundle.freeName("acme", () => false),
      "acme-2"
    )
  })
})
