/**
 * Connection tests over a scripted Switchboard and a scripted probe, under TestClock: what is probed for each
 * kind of connector (the catalog's strategy, required config, default ports, derived URLs, the auth of HTTP
 * connectors), the status, `last_tested_at`, `last_error` and audit a test records, masked credential values in
 * every answer, the circuit breaker per connection (opened by unhealthy targets only), and the per-tenant limit of
 * 100 tests per 60 s answering `rate_limited` with the seconds to wait.
 */
import { assert, describe, it } from "@effect/vitest"
import type { AuditRecord } from "@switchboard/core/AuditLog"
import type * as Catalog from "@switchboard/core/Catalog"
import type * as Connection from "@switchboard/core/Connection"
import type * as Connector from "@switchboard/core/Connector"
import * as Principal from "@switchboard/core/Principal"
import { Probe, type ProbeRequest, type ProbeResult } from "@switchboard/core/Probe"
import { ConnectionNotFound } from "@switchboard/core/Errors"
import { Switchboard, type ResolvedCall } from "@switchboard/core/Switchboard"
import * as Testing from "@switchboard/core/Testing"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import { TestClock } from "effect/testing"

const connector = (over: Partial<Connector.Connector> = {}): Connector.Connector => ({
  id: "ctr_00000000000000000000000001",
  name: "warehouse",
  display_name: "Warehouse",
  kind: "postgresql",
  config: { host: "db.example.com", port: 5432, database: "analytics" },
  auth_patterns: [],
  visibility: "private",
  version: 1,
  created_at: "1970-01-01T00:00:00.000Z",
  updated_at: "1970-01-01T00:00:00.000Z",
  ...over
})

const connection = (id: string, over: Partial<Connection.Connection> = {}): Connection.Connection => ({
  id,
  name: `Conn ${id.slice(-4)}`,
  connector_id: "ctr_00000000000000000000000001",
  connector_version: null,
  org: "acme",
  workspace: "eng",
  owner: "alice",
  access_scope: "personal",
  is_service_account: false,
  auth_type: null,
  credential: null,
  parameters: {},
  servers: [],
  allow_private_network: false,
  has_security: true,
  header_names: [],
  status: "active",
  account_label: null,
  last_tested_at: null,
  last_error: null,
  created_at: "1970-01-01T00:00:00.000Z",
  updated_at: "1970-01-01T00:00:00.000Z",
  ...over
})

const { config: _config, ...withoutConfig } = connector()

const secrets = (values: Record<string, string>) =>
  Object.fromEntries(Object.entries(values).map(([k, v]) => [k, Redacted.make(v)]))

const call = (over: Partial<ResolvedCall> = {}): ResolvedCall => ({
  connection: connection("conn_00000000000000000000000001"),
  connector: connector(),
  pattern: undefined,
  baseUrl: undefined,
  auth: { headers: {}, query: {} },
  headers: {},
  query: {},
  values: secrets({ username: "svc_kaireon", password: "secret" }),
  source: { _tag: "Inline" },
  ...over
})

const planOf = (c: ResolvedCall) => {
  const r = Testing.plan(c)
  if (Result.isFailure(r)) throw new Error(r.failure.message)
  return r.success
}

describe("Testing.plan", () => {
  it("probes catalog types with their strategy, the default port and their credential values", () => {
    const p = planOf(
      call({ connector: connector({ config: { host: "db.example.com", database: "analytics", port: "" } }) })
    )
    // An empty port is not a port: the catalog says the field is required.
    assert.strictEqual(p._tag, "Invalid")
    const redshift = planOf(
      call({
        connector: connector({ kind: "redshift", config: { host: "r.example.com", port: 5439, database: "dev" } })
      })
    )
    assert.deepStrictEqual(redshift._tag === "Probe" && [redshift.strategy, redshift.config.port], ["postgres", 5439])
    const mongo = planOf(call({ connector: connector({ kind: "mongodb", config: { host: "m.example.com" } }) }))
    assert.deepStrictEqual(mongo._tag === "Probe" && [mongo.strategy, mongo.config.port], ["mongodb", 27017])
    const sftp = planOf(call({ connector: connector({ kind: "sftp", config: { host: "f.example.com", port: 2222 } }) }))
    assert.deepStrictEqual(sftp._tag === "Probe" && [sftp.strategy, sftp.config.port], ["ssh", 2222])
    assert.deepStrictEqual(
      Object.keys(sftp._tag === "Probe" ? sftp.credentials : {}),
      ["username", "password"],
      "credential values go to the probe as they are"
    )
    const confluent = planOf(
      call({ connector: connector({ kind: "confluent_kafka", config: { bootstrapServers: "pkc.example.com:9092" } }) })
    )
    assert.strictEqual(confluent._tag === "Probe" && confluent.config.ssl, true, "Confluent Cloud needs TLS")
    for (const [kind, strategy] of [
      ["aws_s3", "s3"],
      ["gcs", "gcs"],
      ["azure_blob", "azure_blob"],
      ["amazon_kinesis", "kinesis"],
      ["mysql", "mysql"],
      ["kafka", "kafka"]
    ] as const) {
      const config: Catalog.Config = {
        host: "h.example.com",
        port: 1,
        database: "d",
        bucket: "b",
        region: "us-east-1",
        project: "p",
        container: "c",
        storageAccount: "acct",
        streamName: "s",
        bootstrapServers: "k.example.com:9092"
      }
      const p2 = planOf(call({ connector: connector({ kind, config }) }))
      assert.strictEqual(p2._tag === "Probe" && p2.strategy, strategy, kind)
    }
  })

  it("says which required config is missing instead of probing", () => {
    const p = planOf(call({ connector: connector({ kind: "aws_s3", config: { bucket: "b" } }) }))
    assert.deepStrictEqual(p, { _tag: "Invalid", strategy: "s3", detail: 'aws_s3 requires config field "region"' })
    const mongo = planOf(call({ connector: connector({ kind: "mongodb", config: {} }) }))
    assert.strictEqual(
      mongo._tag === "Invalid" && mongo.detail,
      'mongodb requires one of config fields "host" or "connectionString"'
    )
  })

  it("derives the URL of types reached over HTTP; a connection's server replaces a REST API's url", () => {
    const url = (kind: Connector.Kind, config: Catalog.Config, baseUrl?: string) => {
      const p = planOf(call({ connector: connector({ kind, config }), baseUrl }))
      return p._tag === "Probe" ? p.config.url : `invalid: ${p.detail}`
    }
    assert.strictEqual(url("rest_api", { url: "https://api.example.com/v2" }), "https://api.example.com/v2")
    assert.strictEqual(
      url("rest_api", { url: "https://api.example.com/v2/", healthPath: "/health" }),
      "https://api.example.com/v2/health"
    )
    assert.strictEqual(
      url("rest_api", { url: "https://api.example.com/v2" }, "https://staging.example.com"),
      "https://staging.example.com"
    )
    assert.strictEqual(url("webhook", { url: "https://hooks.example.com/in" }), "https://hooks.example.com/in")
    assert.strictEqual(
      url("snowflake", { account: "xy12345.us-east-1", warehouse: "W", database: "D" }),
      "https://xy12345.us-east-1.snowflakecomputing.com/"
    )
    assert.strictEqual(
      url("snowflake", { account: "xy 12345/evil", warehouse: "W", database: "D" }),
      'invalid: config field "account" is not a Snowflake account identifier'
    )
    assert.strictEqual(
      url("databricks", { host: "https://adb-1.azuredatabricks.net/", httpPath: "/sql/1.0/warehouses/a" }),
      "https://adb-1.azuredatabricks.net/api/2.0/preview/scim/v2/Me"
    )
    assert.strictEqual(
      url("bigquery", { project: "my proj", dataset: "events" }),
      "https://bigquery.googleapis.com/bigquery/v2/projects/my%20proj/datasets/events"
    )
    assert.strictEqual(
      url("salesforce", { instanceUrl: "https://acme.my.salesforce.com" }),
      "https://acme.my.salesforce.com/services/data/"
    )
    assert.strictEqual(url("hubspot", {}), "https://api.hubapi.com/account-info/v3/details")
  })

  it("probes HTTP connectors and remote MCP servers at their base URL with the connection's auth; not local programs", () => {
    const p = planOf(
      call({
        connector: { ...withoutConfig, kind: "http", proxy_url: "https://api.example.com/v1" },
        baseUrl: "https://api.example.com/v1",
        auth: { headers: { "x-api-key": Redacted.make("k-123") }, query: { key: Redacted.make("q-456") } },
        headers: { "X-Team": Redacted.make("eng") },
        query: { region: "eu" }
      })
    )
    assert.strictEqual(p._tag, "Probe")
    if (p._tag === "Probe") {
      assert.deepStrictEqual(p.config, { url: "https://api.example.com/v1", expect: "any" })
      assert.deepStrictEqual(
        Object.fromEntries(Object.entries(p.credentials).map(([k, v]) => [k, Redacted.value(v)])),
        { "header:X-Team": "eng", "header:x-api-key": "k-123", "query:region": "eu", "query:key": "q-456" }
      )
    }
    const local = Testing.plan(
      call({ connector: { ...withoutConfig, kind: "mcp", command: { program: "npx", args: ["server"] } } })
    )
    assert.isTrue(Result.isFailure(local))
    if (Result.isFailure(local)) assert.strictEqual(local.failure.code, "invalid_parameter")
  })

  it("scrubs credential values a detail carries", () => {
    assert.strictEqual(
      Testing.scrub(
        'password authentication failed for user "svc_kaireon" (pw secret)',
        secrets({ u: "svc_kaireon", p: "secret" })
      ),
      'password authentication failed for user "sv***on" (pw ****)'
    )
  })
})

// ---------------------------------------------------------------------------------------------------------------

interface Fixture {
  readonly layer: Layer.Layer<Testing.ConnectionTests>
  readonly probes: Array<ProbeRequest>
  readonly audit: Array<Partial<AuditRecord>>
  readonly stored: Map<string, Connection.Connection>
}

/** A Switchboard that knows a few connections (any `conn_…` id resolves) and a probe answering from a script. */
const fixture = (
  answer: (req: ProbeRequest, n: number) => ProbeResult,
  options: { readonly call?: (id: string) => Partial<ResolvedCall>; readonly tests?: Partial<Testing.Options> } = {}
): Fixture => {
  const probes: Array<ProbeRequest> = []
  const audit: Array<Partial<AuditRecord>> = []
  const stored = new Map<string, Connection.Connection>()
  const get = (id: string) => {
    const found = stored.get(id) ?? connection(id)
    stored.set(id, found)
    return found
  }
  const switchboard = Layer.succeed(Switchboard, {
    resolveCall: (ref: string) =>
      ref.startsWith("conn_")
        ? Effect.sync(() => call({ connection: get(ref), ...options.call?.(ref) }))
        : Effect.fail(new ConnectionNotFound({ message: `connection ${ref} not found` })),
    setConnectionStatus: (
      id: string,
      patch: { status: Connection.Status; last_error?: string | null; tested?: boolean }
    ) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const at = new Date(now).toISOString()
        const next: Connection.Connection = {
          ...get(id),
          status: patch.status,
          updated_at: at,
          ...(patch.last_error === undefined ? {} : { last_error: patch.last_error }),
          ...(patch.tested === true ? { last_tested_at: at } : {})
        }
        stored.set(id, next)
        return next
      }),
    audit: (entry: Partial<AuditRecord>) => Effect.sync(() => void audit.push(entry))
  } as never)
  const probe = Layer.succeed(
    Probe,
    Probe.of({
      probe: (req) =>
        Effect.sync(() => {
          probes.push(req)
          return answer(req, probes.length)
        })
    })
  )
  return {
    layer: Testing.layerWith(options.tests ?? {}).pipe(Layer.provide([switchboard, probe])),
    probes,
    audit,
    stored
  }
}

const ok: ProbeResult = { ok: true, detail: "PostgreSQL 16.4 accepted the credentials (SCRAM-SHA-256)" }
const unreachable: ProbeResult = {
  ok: false,
  reason: "unreachable",
  detail: "db.example.com (203.0.113.9:5432) refused the connection (ECONNREFUSED)"
}
const wrongPassword: ProbeResult = {
  ok: false,
  reason: "authentication_failed",
  detail: 'db.example.com: password authentication failed for user "svc_kaireon" (SQLSTATE 28P01)'
}

const A = "conn_00000000000000000000000001"
const test = (ref: string) => Testing.ConnectionTests.use((t) => t.test(ref))

/** Every answer shows credential values only masked. */
const assertMasked = (value: unknown) => {
  const text = JSON.stringify(value)
  assert.notInclude(text, "svc_kaireon")
  assert.notInclude(text, '"secret"')
}

describe("ConnectionTests.test", () => {
  it.effect("a passing probe makes the connection active, records the test and masks the credential values", () => {
    const f = fixture(() => ok)
    return Effect.gen(function* () {
      yield* TestClock.setTime(Date.UTC(2026, 2, 16, 14, 30))
      const tested = yield* test(A)
      assert.strictEqual(tested.status, "active")
      assert.strictEqual(tested.last_tested_at, "2026-03-16T14:30:00.000Z")
      assert.strictEqual(tested.last_error, null)
      assert.strictEqual(tested.type, "postgresql")
      // The seed's shape: first 2 and last 2 characters of a long value, a short one fully masked.
      assert.deepStrictEqual(tested.auth_config, { username: "sv***on", password: "****" })
      assert.deepStrictEqual(tested.test, { ok: true, strategy: "postgres", detail: ok.detail, duration_ms: 0 })
      assertMasked(tested)
      const [req] = f.probes
      assert.deepStrictEqual(req?.config, { host: "db.example.com", port: 5432, database: "analytics" })
      assert.strictEqual(req?.allowPrivateNetwork, false)
      assert.strictEqual(req?.timeoutMillis, 10_000)
      assert.strictEqual(Redacted.value(req?.credentials.password ?? Redacted.make("")), "secret")
      assert.deepStrictEqual(f.audit, [
        {
          action: "connection.test",
          outcome: "success",
          connector_id: "ctr_00000000000000000000000001",
          connection_id: A,
          target: "Conn 0001",
          duration_ms: 0
        }
      ])
    }).pipe(Effect.provide(f.layer))
  })

  it.effect("a failing probe sets status error and last_error, with any echoed credential masked", () => {
    const f = fixture(() => wrongPassword)
    return Effect.gen(function* () {
      const tested = yield* test(A)
      assert.strictEqual(tested.status, "error")
      assert.strictEqual(
        tested.last_error,
        // A user name is not a secret: the target's answer stays readable.
        'authentication failed: db.example.com: password authentication failed for user "svc_kaireon" (SQLSTATE 28P01)'
      )
      assert.strictEqual(tested.test.reason, "authentication_failed")
      assert.isFalse(tested.test.ok)
      assert.deepStrictEqual(tested.auth_config, { username: "sv***on", password: "****" })
      assert.strictEqual(f.audit[0]?.outcome, "failure")
      assert.strictEqual(f.audit[0]?.error_code, "authentication_failed")
      // The next passing test clears the error.
    }).pipe(Effect.provide(f.layer))
  })

  it.effect("masks only secret values a target echoes: a plain host or user name shows, a password never does", () => {
    const password = "pw-canary-7Hq2Zx9Lm4"
    const token = "tok-canary-Vb8Rn3Kd6Y"
    const echo: ProbeResult = {
      ok: false,
      reason: "authentication_failed",
      detail: `db.internal.example asked ops_reader for ${password}, then ${token}`
    }
    const f = fixture(() => echo, {
      call: () => ({
        pattern: {
          type: "BASIC",
          fields: [
            { field_name: "host", input_type: "text" },
            { field_name: "username", input_type: "text" },
            { field_name: "pass", input_type: "password" }
          ]
        } as never,
        // `token` is undeclared: its well-known name makes it secret.
        values: secrets({ host: "db.internal.example", username: "ops_reader", pass: password, token })
      })
    })
    return Effect.gen(function* () {
      const tested = yield* test(A)
      assert.strictEqual(tested.test.detail, "db.internal.example asked ops_reader for pw***m4, then to***6Y")
      assert.include(tested.last_error ?? "", "db.internal.example asked ops_reader")
      const text = JSON.stringify(tested)
      assert.notInclude(text, password)
      assert.notInclude(text, token)
    }).pipe(Effect.provide(f.layer))
  })

  it.effect("clears last_error when a later test passes, keeps a disabled connection disabled", () => {
    let n = 0
    const f = fixture(() => (n++ === 0 ? unreachable : ok))
    return Effect.gen(function* () {
      assert.strictEqual((yield* test(A)).last_error?.startsWith("unreachable: "), true)
      const again = yield* test(A)
      assert.strictEqual(again.status, "active")
      assert.strictEqual(again.last_error, null)
      f.stored.set(A, { ...connection(A), status: "disabled" })
      const disabled = yield* test(A)
      assert.strictEqual(disabled.status, "disabled")
      assert.isNotNull(disabled.last_tested_at)
    }).pipe(Effect.provide(f.layer))
  })

  it.effect("does not probe a config it cannot probe, and reports it as the test's failure", () => {
    const f = fixture(() => ok, {
      call: () => ({
        connector: connector({ kind: "snowflake", config: { account: "no spaces", warehouse: "W", database: "D" } })
      })
    })
    return Effect.gen(function* () {
      const tested = yield* test(A)
      assert.strictEqual(tested.status, "error")
      assert.strictEqual(tested.test.reason, "invalid_config")
      assert.strictEqual(
        tested.last_error,
        'invalid config: config field "account" is not a Snowflake account identifier'
      )
      assert.strictEqual(f.probes.length, 0)
    }).pipe(Effect.provide(f.layer))
  })

  it.effect("passes the connection's private-network switch and connect timeout to the probe", () => {
    const f = fixture(() => ok, {
      call: (id) => ({ connection: connection(id, { allow_private_network: true, timeouts: { connect_ms: 1500 } }) })
    })
    return Effect.gen(function* () {
      yield* test(A)
      assert.strictEqual(f.probes[0]?.allowPrivateNetwork, true)
      assert.strictEqual(f.probes[0]?.timeoutMillis, 1500)
    }).pipe(Effect.provide(f.layer))
  })

  it.effect("refuses viewers, and unknown connections are not found", () => {
    const f = fixture(() => ok)
    return Effect.gen(function* () {
      const viewer = yield* Effect.flip(
        test(A).pipe(
          Effect.provideService(Principal.CurrentPrincipal, {
            org: "acme",
            workspace: "eng",
            user: "v",
            role: "viewer"
          })
        )
      )
      assert.strictEqual(viewer.code, "forbidden")
      assert.strictEqual(viewer.status, 403)
      const missing = yield* Effect.flip(test("nope"))
      assert.strictEqual(missing.code, "connection_not_found")
      assert.strictEqual(f.probes.length, 0)
    }).pipe(Effect.provide(f.layer))
  })
})

describe("circuit breaker per connection", () => {
  it.effect(
    "5 unreachable probes open the circuit: tests answer circuit_open without probing, then one trial after 30 s",
    () => {
      let healthy = false
      const f = fixture(() => (healthy ? ok : unreachable))
      const B = "conn_00000000000000000000000002"
      return Effect.gen(function* () {
        for (let i = 0; i < 5; i++) assert.strictEqual((yield* test(A)).status, "error")
        assert.strictEqual(f.probes.length, 5)
        const open = yield* Effect.flip(test(A))
        assert.strictEqual(open.code, "circuit_open")
        assert.strictEqual(open.status, 503)
        assert.deepStrictEqual(open.details, { retry_after_seconds: 30, state: "open" })
        assert.strictEqual(f.probes.length, 5, "the target is not contacted while the circuit is open")
        // Other connections have their own circuit.
        assert.strictEqual((yield* test(B)).status, "error")
        assert.strictEqual(f.probes.length, 6)
        yield* TestClock.adjust("30 seconds")
        healthy = true
        const trial = yield* test(A)
        assert.strictEqual(trial.status, "active")
        assert.strictEqual(f.probes.length, 7)
        assert.strictEqual((yield* test(A)).status, "active")
      }).pipe(Effect.provide(f.layer))
    }
  )

  it.effect("a destination the SSRF guard refused was never contacted: it neither counts nor resets the count", () => {
    const refused: ProbeResult = {
      ok: false,
      reason: "refused",
      detail: "refused 10.0.0.5 (private network, RFC 1918)"
    }
    const f = fixture((_, n) => (n === 3 ? refused : unreachable))
    return Effect.gen(function* () {
      for (let i = 0; i < 6; i++) yield* test(A)
      assert.strictEqual((yield* Effect.flip(test(A))).code, "circuit_open")
      assert.strictEqual(f.probes.length, 6)
    }).pipe(Effect.provide(f.layer))
  })

  it.effect("refused credentials and missing databases are answers: they never open the circuit", () => {
    const f = fixture(() => wrongPassword)
    return Effect.gen(function* () {
      for (let i = 0; i < 8; i++) assert.strictEqual((yield* test(A)).test.reason, "authentication_failed")
      assert.strictEqual(f.probes.length, 8)
    }).pipe(Effect.provide(f.layer))
  })
})

describe("rate limit per tenant", () => {
  const ids = Array.from({ length: 10 }, (_, i) => `conn_0000000000000000000000010${i}`)

  it.effect("100 tests per 60 s per organization, then 429 rate_limited with the seconds to wait", () => {
    const f = fixture(() => ok)
    const bob = { org: "other", workspace: "w", user: "bob", role: "editor" } as const
    return Effect.gen(function* () {
      for (let i = 0; i < 100; i++) yield* test(ids[i % ids.length] ?? A)
      yield* TestClock.adjust("15 seconds")
      const limited = yield* Effect.flip(test(A))
      assert.strictEqual(limited.code, "rate_limited")
      assert.strictEqual(limited.status, 429)
      assert.deepStrictEqual(limited.details, { retry_after_seconds: 45, limit: 100, window_seconds: 60 })
      assert.strictEqual(f.probes.length, 100)
      // Another tenant has its own budget.
      assert.strictEqual((yield* test(A).pipe(Effect.provideService(Principal.CurrentPrincipal, bob))).status, "active")
      yield* TestClock.adjust("45 seconds")
      assert.strictEqual((yield* test(A)).status, "active")
    }).pipe(Effect.provide(f.layer))
  })

  it.effect("the limit is configurable", () => {
    const f = fixture(() => ok, { tests: { rateLimit: { limit: 2, window: "10 seconds" } } })
    return Effect.gen(function* () {
      yield* test(A)
      yield* test(A)
      const limited = yield* Effect.flip(test(A))
      assert.deepStrictEqual(limited.details, { retry_after_seconds: 10, limit: 2, window_seconds: 10 })
    }).pipe(Effect.provide(f.layer))
  })
})
