/**
 * The daemon as a team server on TCP (SQLite store): it refuses to listen without an API key to use; every
 * request needs a valid, unrevoked key (401 `unauthorized` otherwise); the key's principal acts (its org, its
 * role: a viewer cannot write); principal headers are not trusted on TCP; revoking takes effect on the next
 * request; and no key ever appears in the daemon's output, an answer, or `apikey list`.
 */
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import {
  type CreatedKey,
  type Daemon,
  call,
  cli,
  connectorPayload,
  createKey,
  createKeysInProcess,
  killAll,
  makeHome,
  secretOf,
  startDaemon,
  tempRoot
} from "./harness.ts"

const root = tempRoot()
const home = makeHome(root, "a")
let refused: { code: number; output: string }
let admin: CreatedKey
let viewer: CreatedKey
let doomed: CreatedKey
let daemon: Daemon
const answers: Array<string> = []
const request = async (...args: Parameters<typeof call>) => {
  const answer = await call(...args)
  answers.push(answer.text)
  return answer
}

beforeAll(async () => {
  // No key yet: there would be no way in, and no peer check on TCP; the daemon says what to do.
  refused = await startDaemon(home).then(
    () => assert.fail("the daemon started without any API key"),
    (error: { code: number; output: string }) => error
  )
  admin = createKey(home, { org: "acme", workspace: "main", user: "alice", role: "admin" }, "alice laptop")
  ;[viewer, doomed] = await createKeysInProcess(home, [
    { org: "acme", workspace: "main", user: "victor", role: "viewer" },
    { org: "acme", workspace: "main", user: "dora", role: "editor" }
  ])
  daemon = await startDaemon(home)
}, 90_000)

afterAll(() => {
  killAll()
  Fs.rmSync(root, { recursive: true, force: true })
})

describe("the team server on TCP", () => {
  it("refuses to listen on TCP without an API key to use", () => {
    assert.notStrictEqual(refused.code, 0)
    assert.include(refused.output, "switchboard apikey create")
    assert.match(admin.key, /^sbk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/u)
    assert.isTrue(admin.key.startsWith(admin.prefix))
    assert.lengthOf(secretOf(admin.key), 43)
  })

  it("answers 401 without a valid key, on every route", async () => {
    // No key, a malformed one, a well-formed one with a wrong secret, another scheme: 401 in the error shape.
    const anonymous = await request(daemon, "GET", "/v1/connectors")
    assert.strictEqual(anonymous.status, 401)
    assert.strictEqual(anonymous.json.error.code, "unauthorized")
    const forged = `${admin.prefix}_${"A".repeat(43)}`
    const refusals = await Promise.all(
      [
        { authorization: `Bearer ${forged}` },
        { authorization: "Bearer sbk_nothing" },
        { authorization: `Basic ${Buffer.from(`x:${admin.key}`).toString("base64")}` },
        { authorization: `Bearer ${admin.key}x` }
      ].map((headers) => request(daemon, "GET", "/v1/connectors", { headers }))
    )
    for (const answer of refusals) {
      assert.strictEqual(answer.status, 401, JSON.stringify(answer.json))
      assert.strictEqual(answer.json.error.code, "unauthorized")
    }
    // Every route is behind the key, the health check and the OpenAPI document too.
    assert.strictEqual((await request(daemon, "GET", "/healthz")).status, 401)
    assert.strictEqual((await request(daemon, "GET", "/openapi.json")).status, 401)
  })

  it("acts as the key's principal: its org, its role (a viewer cannot write), never the principal headers", async () => {
    // A good key works, as its principal: the connector is in org acme, not in the socket user's org.
    const created = await request(daemon, "POST", "/v1/connectors", { key: admin.key, body: connectorPayload("crm") })
    assert.strictEqual(created.status, 201, created.text)
    const listed = await request(daemon, "GET", "/v1/connectors", { key: viewer.key })
    assert.strictEqual(listed.status, 200)
    assert.deepStrictEqual(
      listed.json.data.map((c: { name: string }) => c.name),
      ["crm"]
    )
    const audit = await request(daemon, "GET", "/v1/audit", { key: admin.key })
    assert.strictEqual(audit.status, 200, audit.text)
    const creation = audit.json.data.find((r: { action: string }) => r.action === "connector.create")
    assert.strictEqual(creation?.actor, "alice", JSON.stringify(creation))

    // A viewer may read, not write (403 per policy); an editor may write.
    const denied = await request(daemon, "POST", "/v1/connectors", { key: viewer.key, body: connectorPayload("nope") })
    assert.strictEqual(denied.status, 403)
    assert.strictEqual(denied.json.error.code, "forbidden")
    const edited = await request(daemon, "PATCH", `/v1/connectors/${created.json.id}`, {
      key: doomed.key,
      body: { description: "edited by dora" }
    })
    assert.strictEqual(edited.status, 200, edited.text)

    // On TCP the principal is the key's: the headers that a trusted local service may send are refused.
    const spoofed = await request(daemon, "GET", "/v1/connectors", {
      key: viewer.key,
      headers: { "x-switchboard-user": "alice", "x-switchboard-role": "admin" }
    })
    assert.strictEqual(spoofed.status, 400)
    assert.include(spoofed.json.error.message, "not accepted with an API key")
  })

  it("refuses a key from the request after it is revoked; lists keys by prefix only", async () => {
    // Revoked while the daemon runs: refused from the next request on.
    const revoked = cli(home, ["apikey", "revoke", doomed.id, "--json"])
    assert.strictEqual(revoked.code, 0, revoked.stderr)
    assert.isString(JSON.parse(revoked.stdout).revoked_at)
    const afterRevoke = await request(daemon, "GET", "/v1/connectors", { key: doomed.key })
    assert.strictEqual(afterRevoke.status, 401)
    assert.include(afterRevoke.json.error.message, "revoked")
    const unknown = cli(home, ["apikey", "revoke", "ak_0000000000000000"])
    assert.strictEqual(unknown.code, 3)
    assert.include(unknown.stderr, "api_key_not_found")

    // The list shows prefixes, use and revocation; never a key.
    const list = cli(home, ["apikey", "list", "--json"])
    answers.push(list.stdout, revoked.stdout)
    assert.strictEqual(list.code, 0, list.stderr)
    const rows = JSON.parse(list.stdout).data as Array<{
      id: string
      prefix: string
      name: string | null
      last_used_at: string | null
      revoked_at: string | null
    }>
    const byId = new Map(rows.map((row) => [row.id, row]))
    assert.strictEqual(byId.get(admin.id)?.name, "alice laptop")
    assert.isString(byId.get(admin.id)?.last_used_at)
    assert.isString(byId.get(doomed.id)?.revoked_at)
    assert.isNull(byId.get(viewer.id)?.revoked_at)
  }, 60_000)

  it("never shows a key: not in the daemon's output, an answer, a listing or the database file", async () => {
    await daemon.stop()

    // The keys' secrets appear nowhere: daemon logs, answers, list output, the database file.
    const files = ["switchboard.db", "switchboard.db-wal"].map((f) => Path.join(home.dir, f)).filter(Fs.existsSync)
    const outputs = [daemon.output(), ...answers, ...files.map((f) => Fs.readFileSync(f).toString("latin1"))]
    for (const key of [admin.key, viewer.key, doomed.key]) {
      const secret = secretOf(key)
      for (const output of outputs) assert.notInclude(output, secret)
    }
    assert.include(daemon.output(), "daemon listening")
  })
})
