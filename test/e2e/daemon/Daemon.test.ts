/**
 * The real daemon process on a temporary data directory and runtime directory, with the SQLite store: health,
 * `/openapi.json`, create and list over the socket (curl-style and with the typed client, at the same time), the
 * remote `Switchboard` service, `status` and `stop`, and a canary secret that appears in no response and no log.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Client from "@switchboard/daemon/client"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll } from "vitest"
import { eventually, killAll, request, type RawResponse, sandbox, spawnMain, startDaemon } from "./harness.ts"

const CANARY = "CANARY-e2e1-SECRET-c0de"
const CANARY_HEADER = "CANARY-HDR-e2e2-SECRET"
const fragments = [CANARY, CANARY_HEADER, "e2e1-SECRET", "e2e2-SECRET"]

const box = sandbox()
afterAll(() => {
  killAll()
  box.cleanup()
})

const connector = (name: string) => ({
  name,
  display_name: `Connector ${name}`,
  auth_patterns: [
    {
      type: "API_KEY",
      fields: [
        { field_name: "api_key", input_type: "password", required: true },
        { field_name: "domain", required: true }
      ],
      auth_header_key_override: "X-API-Key"
    }
  ],
  proxy_url: "https://{{domain}}/api",
  proxy_enabled: true
})

const username = Os.userInfo().username

describe("the daemon process", () => {
  it("serves the API on a private socket, to several clients at once, and stops cleanly", async () => {
    const logFile = Path.join(box.dir, "daemon.log")
    const daemon = await startDaemon(box, ["--log-file", logFile])
    const seen: Array<RawResponse> = []
    const call = async (method: string, path: string, body?: unknown, headers?: Record<string, string>) => {
      const res = await request(box.socket, method, path, body, headers)
      seen.push(res)
      return res
    }

    // Files and permissions.
    assert.strictEqual(daemon.health.pid, daemon.child.pid)
    assert.strictEqual(Fs.readFileSync(box.pidFile, "utf8").trim(), String(daemon.child.pid))
    assert.strictEqual(Fs.statSync(box.socket).mode & 0o777, 0o600)
    assert.strictEqual(Fs.statSync(Path.dirname(box.socket)).mode & 0o777, 0o700)
    assert.strictEqual(Fs.statSync(box.home).mode & 0o777, 0o700)
    assert.isTrue(Fs.existsSync(Path.join(box.home, "switchboard.db")))
    assert.strictEqual(Fs.statSync(Path.join(box.home, "master.key")).mode & 0o777, 0o600)

    // openapi.json from the same definition.
    const openapi = await call("GET", "/openapi.json")
    assert.strictEqual(openapi.status, 200)
    assert.strictEqual(openapi.json.info.title, "Switchboard")
    assert.isDefined(openapi.json.paths["/v1/connections"].get)

    // Two kinds of client at once: raw HTTP and the typed client, interleaved.
    const typed = Effect.runPromise(
      Effect.gen(function* () {
        const client = yield* Client.DaemonClient
        return yield* Effect.forEach(
          Array.from({ length: 10 }, (_, i) => `typed-${i}`),
          (name) => client.connectors.create({ payload: connector(name) as never }),
          { concurrency: 5 }
        )
      }).pipe(Effect.provide(Client.layer(box.socket)))
    )
    const raw = Promise.all(Array.from({ length: 10 }, (_, i) => call("POST", "/v1/connectors", connector(`raw-${i}`))))
    const lists = Promise.all(Array.from({ length: 5 }, () => call("GET", "/v1/connectors?limit=100")))
    const [typedCreated, rawCreated] = await Promise.all([typed, raw, lists])
    assert.strictEqual(typedCreated.length, 10)
    assert.deepStrictEqual(
      rawCreated.map((r) => r.status),
      Array.from({ length: 10 }, () => 201)
    )
    const all = await call("GET", "/v1/connectors?limit=100")
    assert.strictEqual(all.json.data.length, 20)
    const page = await call("GET", "/v1/connectors?limit=5&name_prefix=raw-")
    assert.strictEqual(page.json.data.length, 5)
    assert.isTrue(page.json.has_more)

    // Secrets go in and never come out.
    const cred = await call("POST", "/v1/connectors/raw-0/user/credentials", {
      values: { api_key: CANARY, domain: "api.raw.test" }
    })
    assert.strictEqual(cred.status, 200)
    assert.strictEqual(cred.json.owner.user, username)
    const conn = await call("POST", "/v1/connectors/raw-0/connections", {
      name: "Canary",
      security: { api_key: CANARY, domain: "api.raw.test" },
      headers: { "X-Canary": CANARY_HEADER }
    })
    assert.strictEqual(conn.status, 201)
    const refused = await call("POST", "/v1/connectors/raw-0/user/credentials", {
      values: { unknown: CANARY, domain: "d.test" }
    })
    assert.strictEqual(refused.status, 422)
    await call("GET", "/v1/connections")
    await call("GET", `/v1/connections/${conn.json.id}`)
    await call("GET", "/v1/connectors/raw-0/user/credentials")
    await call("GET", "/v1/audit?limit=100")

    // The Switchboard service through the daemon: same data, the local user.
    const remote = await Effect.runPromise(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        const created = yield* sb.createConnector(connector("remote-one"))
        const creds = yield* sb.listCredentials("raw-0", "user")
        const missing = yield* Effect.flip(sb.getConnector("nope"))
        return { created, creds, missing }
      }).pipe(Effect.provide(Client.layerRemote(box.socket)))
    )
    assert.strictEqual(remote.created.name, "remote-one")
    assert.strictEqual(remote.creds[0]?.values.api_key, "CA***de")
    assert.strictEqual(remote.missing.code, "connector_not_found")

    // status, then stop.
    const status = spawnMain(box, ["status"])
    assert.strictEqual(await status.exited, 0)
    const reported = JSON.parse(status.stdout())
    assert.strictEqual(reported.running, true)
    assert.strictEqual(reported.healthy, true)
    assert.strictEqual(reported.pid, daemon.child.pid)
    assert.strictEqual(reported.socket, box.socket)

    const stop = spawnMain(box, ["stop"])
    assert.strictEqual(await stop.exited, 0, stop.stderr())
    assert.include([0, 130], await daemon.exited)
    assert.isFalse(Fs.existsSync(box.pidFile))
    assert.isFalse(Fs.existsSync(box.socket))
    const after = spawnMain(box, ["status"])
    assert.strictEqual(await after.exited, 3)
    assert.strictEqual(JSON.parse(after.stdout()).running, false)

    // Structured logs in the log file: one JSON object per line, no secret.
    await eventually(() => Fs.readFileSync(logFile, "utf8").includes("daemon stopped"))
    const log = Fs.readFileSync(logFile, "utf8")
    const lines = log.trim().split("\n")
    for (const line of lines) assert.isObject(JSON.parse(line))
    assert.isTrue(lines.some((l) => JSON.parse(l).message === "daemon listening"))
    assert.isAbove(seen.length, 20)
    const texts = [
      log,
      daemon.stderr(),
      daemon.stdout(),
      JSON.stringify(remote),
      JSON.stringify(typedCreated),
      ...seen.flatMap((r) => [JSON.stringify(r.headers), r.text])
    ]
    for (const text of texts) {
      for (const fragment of fragments) assert.notInclude(text, fragment)
    }
  })
})
