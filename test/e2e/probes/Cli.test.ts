/**
 * `switchboard test <connection>` as a user runs it: the real binary (`packages/daemon/bin/switchboard.js`), through a
 * running daemon (`--via daemon`, the daemon probes and records) and embedded on a data directory's sealed SQLite
 * store (`--via embedded`, the CLI probes itself), against servers on 127.0.0.1. It prints the status, the
 * probe's detail and the credential values masked, as a table or as JSON; it exits 0 for a passing test, 6 when the
 * target failed it and 5 when the SSRF guard refused the destination; the connection is updated either way. No
 * output holds a credential value.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll } from "vitest"
import { closedPort, daemon, httpServer, sshServer, tempDir } from "./support.ts"

const bin = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "../../../packages/daemon/bin/switchboard.js")
const root = tempDir()
afterAll(() => Fs.rmSync(root, { recursive: true, force: true }))

const PASSWORD = "sftp-Passw0rd-cli-77"
const USER = "svc_kaireon"

interface Ran {
  readonly code: number
  readonly out: string
  readonly err: string
}

/** Run the binary with a minimal environment; every output is checked for credential values. */
const cli = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.promise(
    () =>
      new Promise<Ran>((resolve, reject) => {
        const child = spawn(process.execPath, [bin, ...args], {
          env: { PATH: process.env.PATH ?? "", HOME: root, ...env },
          stdio: ["ignore", "pipe", "pipe"]
        })
        let out = ""
        let err = ""
        child.stdout.on("data", (c: Buffer) => (out += c.toString("utf8")))
        child.stderr.on("data", (c: Buffer) => (err += c.toString("utf8")))
        child.once("error", reject)
        child.once("exit", (code) => resolve({ code: code ?? -1, out, err }))
      })
  ).pipe(
    Effect.tap((r) =>
      Effect.sync(() => {
        assert.notInclude(r.out + r.err, PASSWORD)
        assert.notInclude(r.out + r.err, USER)
      })
    )
  )

describe("switchboard test", () => {
  it.live(
    "through the daemon: a passing REST API test exits 0, a closed port exits 6; JSON and tables, values masked",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const d = yield* daemon(root, "via-daemon")
          const api = yield* httpServer(() => 200)
          const down = yield* closedPort
          yield* d.request("POST", "/v1/connectors", {
            name: "hook",
            display_name: "Hook",
            kind: "webhook",
            config: { url: `http://127.0.0.1:${api.port}/in` }
          })
          yield* d.request("POST", "/v1/connectors", {
            name: "down",
            display_name: "Down",
            kind: "sftp",
            config: { host: "127.0.0.1", port: down }
          })
          for (const [connector, name] of [
            ["hook", "hook"],
            ["down", "down"]
          ] as const) {
            const r = yield* d.request("POST", `/v1/connectors/${connector}/connections`, {
              name,
              security: connector === "hook" ? { token: PASSWORD } : { username: USER, password: PASSWORD },
              allow_private_network: true
            })
            assert.strictEqual(r.status, 201, r.text)
          }
          const env = { SWITCHBOARD_SOCKET: d.socket, SWITCHBOARD_HOME: d.home }

          const passed = yield* cli(["--via", "daemon", "--json", "test", "hook"], env)
          assert.strictEqual(passed.code, 0, passed.err)
          const json = JSON.parse(passed.out)
          assert.strictEqual(json.status, "active")
          assert.strictEqual(json.test.strategy, "http")
          assert.deepStrictEqual(json.auth_config, { token: "sf***77" })
          const stored = yield* d.request("GET", "/v1/connections/hook")
          assert.strictEqual(stored.json.last_tested_at, json.last_tested_at)

          const failed = yield* cli(["--via", "daemon", "test", "down"], env)
          assert.strictEqual(failed.code, 6, failed.err)
          assert.match(failed.out, /^status +error$/mu)
          assert.match(failed.out, /^probe +ssh: unreachable$/mu)
          assert.match(failed.out, /^auth +username=sv\*\*\*on password=sf\*\*\*77$/mu)
          assert.include(failed.err, "connection down failed its test: unreachable:")
          assert.strictEqual((yield* d.request("GET", "/v1/connections/down")).json.status, "error")
        })
      ),
    60_000
  )

  it.live(
    "embedded on the data directory: an SFTP test exits 0, a refused destination exits 5",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const ssh = yield* sshServer
          const home = Path.join(root, "embedded")
          // The data is made through a daemon on the sealed SQLite store, which is stopped before the CLI opens it.
          yield* Effect.scoped(
            Effect.gen(function* () {
              const d = yield* daemon(root, "embedded", "sqlite")
              yield* d.request("POST", "/v1/connectors", {
                name: "files",
                display_name: "Files",
                kind: "sftp",
                config: { host: "127.0.0.1", port: ssh.port }
              })
              const security = { username: USER, password: PASSWORD }
              // Organizational: the embedded CLI runs as the default local principal, the daemon as the OS user.
              for (const body of [
                { name: "files", security, access_scope: "organizational", allow_private_network: true },
                { name: "guarded", security, access_scope: "organizational" }
              ]) {
                const r = yield* d.request("POST", "/v1/connectors/files/connections", body)
                assert.strictEqual(r.status, 201, r.text)
              }
            })
          )
          const env = { SWITCHBOARD_HOME: home, SWITCHBOARD_SOCKET: Path.join(home, "none.sock") }

          const passed = yield* cli(["--via", "embedded", "test", "files"], env)
          assert.strictEqual(passed.code, 0, passed.err)
          assert.match(passed.out, /^connection +files \(conn_/mu)
          assert.match(passed.out, /^status +active$/mu)
          assert.match(passed.out, /^probe +ssh: ok$/mu)
          assert.match(passed.out, /^detail +SSH server OpenSSH_9\.6p1 \(protocol 2\.0\)/mu)
          assert.match(passed.out, /^auth +username=sv\*\*\*on password=sf\*\*\*77$/mu)

          const refused = yield* cli(["--via", "embedded", "--json", "test", "guarded"], env)
          assert.strictEqual(refused.code, 5, refused.err)
          const shown = JSON.parse(refused.out)
          assert.strictEqual(shown.test.reason, "refused")
          // What was printed is the connection as now stored.
          assert.strictEqual(shown.status, "error")
          assert.match(shown.last_error, /^refused: refused 127\.0\.0\.1 \(loopback, RFC 1122\)/u)
          assert.strictEqual(JSON.parse(refused.err).error.code, "destination_refused")
        })
      ),
    60_000
  )
})
