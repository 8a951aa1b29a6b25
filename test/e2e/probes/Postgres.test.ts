/**
 * Connection tests against a real PostgreSQL server started by the test run (Debian's `postgresql` package:
 * `initdb` + `pg_ctl` on a loopback port, a throwaway data directory, SCRAM-SHA-256 password authentication, see
 * `test/support/postgres`), through the daemon as `Daemon.run` wires it: the right password makes a connection
 * `active`, a wrong one `error` with `authentication failed`, a closed port `unreachable`, a missing database
 * `not_found`, an MD5-stored password still authenticates, and a loopback target without
 * `allow_private_network` is refused before any connection. Every response and log line is scanned: no password
 * and no user name ever appear, only their masks.
 *
 * Skipped, with the reason, when the PostgreSQL binaries are not installed (CI installs them and sets
 * SWITCHBOARD_REQUIRE_POSTGRES=1, which turns the skip into a failure).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import { afterAll, beforeAll } from "vitest"
import { Cluster } from "../../support/postgres/index.ts"
import { closedPort, daemon, tempDir } from "./support.ts"

const why = Cluster.unavailable()
if (why !== undefined) console.warn(`skipping the PostgreSQL connection tests: ${why}`)

let pg: Cluster.Cluster | undefined
const root = tempDir()
beforeAll(async () => {
  if (why === undefined) pg = await Cluster.start()
}, 120_000)
afterAll(() => {
  pg?.stop()
  Fs.rmSync(root, { recursive: true, force: true })
})

const cluster = (): Cluster.Cluster => {
  if (pg === undefined) throw new Error("the PostgreSQL cluster did not start")
  return pg
}

describe.skipIf(why !== undefined)("connection tests against a real PostgreSQL server", () => {
  it.live(
    "right password → active, wrong password → authentication failed, closed port → unreachable; masked everywhere",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const c = cluster()
          const d = yield* daemon(root, "pg")
          const wrongPassword = "not-the-Passw0rd-at-all"
          const connector = (name: string, config: Record<string, unknown>) =>
            d.request("POST", "/v1/connectors", { name, display_name: name, kind: "postgresql", config })
          const connect = (connector: string, name: string, body: Record<string, unknown>) =>
            Effect.map(
              d.request("POST", `/v1/connectors/${connector}/connections`, {
                name,
                access_scope: "organizational",
                allow_private_network: true,
                ...body
              }),
              (r) => {
                assert.strictEqual(r.status, 201, r.text)
                return r.json.id as string
              }
            )
          const test = (id: string) => d.request("POST", `/v1/connections/${id}/test`)

          assert.strictEqual(
            (yield* connector("warehouse", { host: "127.0.0.1", port: c.port, database: c.database })).status,
            201
          )
          const cred = yield* d.request("POST", "/v1/connectors/warehouse/organization/credentials", {
            name: "default",
            values: { username: c.user, password: c.password }
          })
          assert.strictEqual(cred.status, 200, cred.text)
          const good = yield* connect("warehouse", "Warehouse", {
            credential: { scope: "organization", name: "default" }
          })
          const bad = yield* connect("warehouse", "Warehouse wrong password", {
            security: { username: c.user, password: wrongPassword }
          })

          const passed = yield* test(good)
          assert.strictEqual(passed.status, 200, passed.text)
          assert.strictEqual(passed.json.status, "active")
          assert.strictEqual(passed.json.last_error, null)
          assert.match(passed.json.last_tested_at, /^\d{4}-\d\d-\d\dT/u)
          assert.strictEqual(passed.json.type, "postgresql")
          assert.deepInclude(passed.json.test, { ok: true, strategy: "postgres" })
          assert.match(passed.json.test.detail, /^PostgreSQL 1\d\.\d+ .*accepted the credentials \(SCRAM-SHA-256\)$/u)
          // The seed's masking: a value of 10 characters or more keeps its first 2 and last 2, a shorter one none.
          assert.deepStrictEqual(passed.json.auth_config, { username: "****", password: "Su***d!" })

          const refused = yield* test(bad)
          assert.strictEqual(refused.status, 200, refused.text)
          assert.strictEqual(refused.json.status, "error")
          assert.strictEqual(refused.json.test.reason, "authentication_failed")
          assert.match(
            refused.json.last_error,
            /^authentication failed: .*password authentication failed for user "\*\*\*\*" \(SQLSTATE 28P01\)$/u
          )
          assert.deepStrictEqual(refused.json.auth_config, { username: "****", password: "no***ll" })

          // The stored connection says the same.
          const stored = yield* d.request("GET", `/v1/connections/${bad}`)
          assert.strictEqual(stored.json.status, "error")
          assert.strictEqual(stored.json.last_error, refused.json.last_error)
          assert.strictEqual(stored.json.last_tested_at, refused.json.last_tested_at)

          // The seed-compatible form.
          const seed = yield* d.request("POST", "/v1/connectors/test", { id: good })
          assert.strictEqual(seed.status, 200, seed.text)
          assert.strictEqual(seed.json.id, good)
          assert.strictEqual(seed.json.status, "active")
          assert.deepStrictEqual(seed.json.auth_config, { username: "****", password: "Su***d!" })

          const port = yield* closedPort
          yield* connector("gone", { host: "127.0.0.1", port, database: c.database })
          const unreachable = yield* test(
            yield* connect("gone", "Gone", { security: { username: c.user, password: c.password } })
          )
          assert.strictEqual(unreachable.json.status, "error")
          assert.strictEqual(unreachable.json.test.reason, "unreachable")
          assert.strictEqual(
            unreachable.json.last_error,
            `unreachable: 127.0.0.1:${port} refused the connection (ECONNREFUSED)`
          )

          for (const text of d.texts()) {
            assert.notInclude(text, c.password)
            assert.notInclude(text, wrongPassword)
            assert.notInclude(text, c.user)
          }
        })
      ),
    60_000
  )

  it.live(
    "a missing database is not_found; an MD5-stored password authenticates; redshift speaks the same protocol",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const c = cluster()
          const d = yield* daemon(root, "pg2")
          const make = (name: string, kind: string, database: string, security: Record<string, string>) =>
            Effect.gen(function* () {
              yield* d.request("POST", "/v1/connectors", {
                name,
                display_name: name,
                kind,
                config: { host: "127.0.0.1", port: c.port, database }
              })
              const r = yield* d.request("POST", `/v1/connectors/${name}/connections`, {
                name,
                security,
                allow_private_network: true
              })
              return (yield* d.request("POST", `/v1/connections/${r.json.id}/test`)).json
            })
          const missing = yield* make("nodb", "postgresql", "no_such_db", { username: c.user, password: c.password })
          assert.strictEqual(missing.test.reason, "not_found")
          assert.include(missing.last_error, 'database "no_such_db" does not exist (SQLSTATE 3D000)')
          if (c.md5User !== undefined) {
            const md5 = yield* make("md5", "postgresql", "postgres", {
              username: c.md5User.user,
              password: c.md5User.password
            })
            assert.strictEqual(md5.status, "active", md5.last_error)
            assert.match(md5.test.detail, /accepted the credentials \(MD5\)$/u)
          }
          const redshift = yield* make("rs", "redshift", c.database, { username: c.user, password: c.password })
          assert.strictEqual(redshift.status, "active", redshift.last_error)
          assert.strictEqual(redshift.test.strategy, "postgres")
          for (const text of d.texts()) assert.notInclude(text, c.password)
        })
      )
  )

  it.live("a loopback server without allow_private_network is refused by the SSRF guard", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const c = cluster()
        const d = yield* daemon(root, "pg3")
        yield* d.request("POST", "/v1/connectors", {
          name: "local",
          display_name: "local",
          kind: "postgresql",
          config: { host: "127.0.0.1", port: c.port, database: c.database }
        })
        const conn = yield* d.request("POST", "/v1/connectors/local/connections", {
          name: "local",
          security: { username: c.user, password: c.password }
        })
        const r = yield* d.request("POST", `/v1/connections/${conn.json.id}/test`)
        assert.strictEqual(r.json.status, "error")
        assert.strictEqual(r.json.test.reason, "refused")
        assert.strictEqual(
          r.json.last_error,
          "refused: refused 127.0.0.1 (loopback, RFC 1122) for host 127.0.0.1: set allow_private_network on the connection to allow it"
        )
      })
    )
  )
})
