/**
 * `POST /v1/connections/{id}/test` and the seed-compatible `POST /v1/connectors/test` through the daemon as
 * `Daemon.run` wires it, against servers on 127.0.0.1: SFTP (SSH banner) and REST API probes, the seed's error
 * answers (400 without an id, 404 for an unknown connection), the circuit breaker of a failing target (503
 * `circuit_open` with `Retry-After`, the target no longer contacted), the tenant's limit of 100 tests per 60 s
 * (429 `rate_limited` with `Retry-After`), and both endpoints in the OpenAPI document. Credential values appear in
 * no response and no log line.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import { afterAll } from "vitest"
import { closedPort, daemon, httpServer, sshServer, tempDir } from "./support.ts"

const root = tempDir()
afterAll(() => Fs.rmSync(root, { recursive: true, force: true }))

const TOKEN = "tok-e2e-probe-Hq4Vn8Xw-secret"
const SFTP_PASSWORD = "sftp-Passw0rd-e2e-91"

describe("connection test endpoints", () => {
  it.live("probe SFTP and REST API targets; answer the seed's errors; never show a credential value", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const d = yield* daemon(root, "api")
        const ssh = yield* sshServer
        const hits: Array<string> = []
        const api = yield* httpServer((path, headers) => {
          hits.push(`${path} ${headers.authorization ?? "-"}`)
          return headers.authorization === `Bearer ${TOKEN}` ? 200 : 401
        })
        yield* d.request("POST", "/v1/connectors", {
          name: "files",
          display_name: "Files",
          kind: "sftp",
          config: { host: "127.0.0.1", port: ssh.port }
        })
        yield* d.request("POST", "/v1/connectors", {
          name: "crm",
          display_name: "CRM",
          kind: "rest_api",
          config: { url: `http://127.0.0.1:${api.port}/v1`, healthPath: "health" }
        })
        const sftp = yield* d.request("POST", "/v1/connectors/files/connections", {
          name: "files",
          security: { username: "svc_kaireon", password: SFTP_PASSWORD },
          allow_private_network: true
        })
        const crm = yield* d.request("POST", "/v1/connectors/crm/connections", {
          name: "crm",
          security: { token: TOKEN },
          allow_private_network: true
        })
        assert.deepStrictEqual([sftp.status, crm.status], [201, 201])

        const files = yield* d.request("POST", `/v1/connections/${sftp.json.id}/test`)
        assert.strictEqual(files.status, 200, files.text)
        assert.strictEqual(files.json.status, "active")
        assert.strictEqual(files.json.test.detail, `SSH server OpenSSH_9.6p1 (protocol 2.0) at 127.0.0.1:${ssh.port}`)
        assert.deepStrictEqual(files.json.auth_config, { username: "sv***on", password: "sf***91" })

        const rest = yield* d.request("POST", "/v1/connectors/test", { id: "crm" })
        assert.strictEqual(rest.status, 200, rest.text)
        assert.strictEqual(rest.json.status, "active")
        assert.strictEqual(rest.json.test.strategy, "http")
        assert.deepStrictEqual(hits, [`/v1/health Bearer ${TOKEN}`])
        assert.deepStrictEqual(rest.json.auth_config, { token: "to***et" })

        const noId = yield* d.request("POST", "/v1/connectors/test", {})
        assert.strictEqual(noId.status, 400)
        assert.strictEqual(noId.json.error.code, "invalid_parameter")
        const badJson = yield* d.request("POST", "/v1/connectors/test", "{not json")
        assert.include([400, 422], badJson.status)
        const unknown = yield* d.request("POST", "/v1/connectors/test", { id: "conn_00000000000000000000000000" })
        assert.strictEqual(unknown.status, 404)
        assert.strictEqual(unknown.json.error.code, "connection_not_found")
        const unknownPath = yield* d.request("POST", "/v1/connections/nope/test")
        assert.strictEqual(unknownPath.status, 404)

        const openapi = yield* d.request("GET", "/openapi.json")
        assert.property(openapi.json.paths, "/v1/connections/{id}/test")
        assert.property(openapi.json.paths, "/v1/connectors/test")

        for (const text of d.texts()) {
          assert.notInclude(text, TOKEN)
          assert.notInclude(text, SFTP_PASSWORD)
          assert.notInclude(text, "svc_kaireon")
        }
      })
    )
  )

  it.live("a failing target opens its circuit: 503 circuit_open with Retry-After, and the target is left alone", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const d = yield* daemon(root, "breaker")
        const port = yield* closedPort
        yield* d.request("POST", "/v1/connectors", {
          name: "down",
          display_name: "Down",
          kind: "sftp",
          config: { host: "127.0.0.1", port }
        })
        const conn = yield* d.request("POST", "/v1/connectors/down/connections", {
          name: "down",
          allow_private_network: true
        })
        for (let i = 0; i < 5; i++) {
          const r = yield* d.request("POST", `/v1/connections/${conn.json.id}/test`)
          assert.strictEqual(r.status, 200)
          assert.strictEqual(r.json.test.reason, "unreachable")
        }
        const open = yield* d.request("POST", `/v1/connections/${conn.json.id}/test`)
        assert.strictEqual(open.status, 503, open.text)
        assert.strictEqual(open.json.error.code, "circuit_open")
        assert.strictEqual(open.headers["retry-after"], String(open.json.error.details.retry_after_seconds))
        const stored = yield* d.request("GET", `/v1/connections/${conn.json.id}`)
        assert.strictEqual(stored.json.status, "error")
      })
    )
  )

  it.live("the 101st test within 60 s answers 429 rate_limited with Retry-After", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const d = yield* daemon(root, "limit")
        // An account that cannot name a Snowflake host fails its test without touching the network: fast.
        yield* d.request("POST", "/v1/connectors", {
          name: "snow",
          display_name: "Snow",
          kind: "snowflake",
          config: { account: "not an account", warehouse: "W", database: "D" }
        })
        const conn = yield* d.request("POST", "/v1/connectors/snow/connections", { name: "snow" })
        for (let i = 0; i < 100; i++) {
          const r = yield* d.request("POST", `/v1/connections/${conn.json.id}/test`)
          assert.strictEqual(r.status, 200, r.text)
          assert.strictEqual(r.json.test.reason, "invalid_config")
        }
        const limited = yield* d.request("POST", "/v1/connectors/test", { id: conn.json.id })
        assert.strictEqual(limited.status, 429, limited.text)
        assert.strictEqual(limited.json.error.code, "rate_limited")
        const wait = limited.json.error.details.retry_after_seconds
        assert.isAtLeast(wait, 1)
        assert.isAtMost(wait, 60)
        assert.strictEqual(limited.headers["retry-after"], String(wait))
        assert.deepInclude(limited.json.error.details, { limit: 100, window_seconds: 60 })
      })
    )
  )
})
