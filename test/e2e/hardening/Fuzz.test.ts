/**
 * Fuzzing every REST endpoint of the real daemon process (fast-check, bounded runs): malformed JSON, wrong types,
 * huge strings, deep nesting, unicode edge cases (lone surrogates, invalid UTF-8, RTL and zero-width marks),
 * random path segments and query strings, lying content types, oversized bodies (413 in the error shape, declared
 * or chunked; not on the proxy route). No 5xx (the seeded connection's upstream is a closed loopback port, so the
 * endpoints that call it may answer 502/504: a genuine upstream failure), every error in the one error shape, the
 * daemon keeps serving, and the store is consistent afterwards: exactly the connectors whose create was
 * acknowledged, each readable, and `PRAGMA integrity_check` ok. Then the MCP management tools with fuzzed
 * arguments through the real `switchboard mcp`.
 */
import fc from "fast-check"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { DatabaseSync } from "node:sqlite"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { killAll, sandbox, startDaemon } from "../daemon/harness.ts"
import * as McpHarness from "../mcp-server/harness.ts"
import { isErrorShape, json, type Raw, send } from "./support.ts"

const box = sandbox()
let daemon: Awaited<ReturnType<typeof startDaemon>>
const seed = { connectorId: "", connectionId: "", version: 1 }
const acknowledged = new Set<string>()
const deleted = new Set<string>()
export const figures = { requests: 0, status4xx: 0, upstream5xx: 0, tooLarge: 0 }

const connectorBody = (name: string) => ({
  name,
  display_name: `Fuzz ${name}`,
  auth_patterns: [
    {
      type: "API_KEY",
      fields: [{ field_name: "api_key", input_type: "password", required: true }],
      auth_header_key_override: "X-API-Key"
    }
  ],
  // A closed loopback port: whatever the fuzzer makes the daemon call stays on this machine.
  proxy_url: "http://127.0.0.1:9/api",
  proxy_enabled: true
})

beforeAll(async () => {
  daemon = await startDaemon(box, ["--log-file", Path.join(box.dir, "daemon.log")])
  const created = await send(box.socket, {
    method: "POST",
    path: "/v1/connectors",
    body: JSON.stringify(connectorBody("fz"))
  })
  assert.strictEqual(created.status, 201, created.text)
  seed.connectorId = json(created).id
  acknowledged.add(seed.connectorId)
  const cred = await send(box.socket, {
    method: "POST",
    path: "/v1/connectors/fz/user/credentials",
    body: JSON.stringify({ values: { api_key: "k" } })
  })
  assert.strictEqual(cred.status, 200, cred.text)
  const conn = await send(box.socket, {
    method: "POST",
    path: "/v1/connectors/fz/connections",
    body: JSON.stringify({ name: "fzc", security: { api_key: "k" } })
  })
  assert.strictEqual(conn.status, 201, conn.text)
  seed.connectionId = json(conn).id
}, 60_000)

afterAll(() => {
  console.info(`fuzz figures: ${JSON.stringify(figures)}`)
  killAll()
  box.cleanup()
})

interface Endpoint {
  readonly method: string
  readonly path: string
  /** Calls the upstream with a valid id: a 502/504 there is a genuine upstream failure. */
  readonly upstream?: boolean
}

const endpoints: ReadonlyArray<Endpoint> = [
  { method: "GET", path: "/v1/connectors" },
  { method: "POST", path: "/v1/connectors" },
  { method: "GET", path: "/v1/connectors/{c}" },
  { method: "PATCH", path: "/v1/connectors/{id}" },
  { method: "DELETE", path: "/v1/connectors/{id}" },
  { method: "GET", path: "/v1/connectors/{c}/authentication_methods" },
  { method: "GET", path: "/v1/connectors/{c}/versions/{v}" },
  { method: "GET", path: "/v1/connectors/{c}/{scope}/credentials" },
  { method: "POST", path: "/v1/connectors/{c}/{scope}/credentials" },
  { method: "DELETE", path: "/v1/connectors/{c}/{scope}/credentials/{name}" },
  { method: "POST", path: "/v1/connectors/{c}/connections" },
  { method: "GET", path: "/v1/connections" },
  { method: "GET", path: "/v1/connections/{conn}" },
  { method: "DELETE", path: "/v1/connections/{conn}" },
  { method: "POST", path: "/v1/connections/{conn}/test", upstream: true },
  { method: "POST", path: "/v1/connectors/test", upstream: true },
  { method: "GET", path: "/v1/connectors/{c}/tools", upstream: true },
  { method: "POST", path: "/v1/connectors/{c}/tools/{tool}/call", upstream: true },
  { method: "GET", path: "/v1/connectors/{c}/auth_url" },
  { method: "GET", path: "/v1/audit" },
  { method: "GET", path: "/healthz" },
  { method: "GET", path: "/openapi.json" },
  { method: "PUT", path: "/v1/connections/{conn}/proxy/{tool}", upstream: true }
]

// Strings that have broken parsers before: unicode edge cases, injection-looking text, path tricks.
const nasty = [
  "",
  " ",
  "\u0000",
  "\ud800",
  "\udfff\ud800",
  "\u202e\u200b\ufeff",
  "𝕊𝕨𝕚𝕥𝕔𝕙",
  "é",
  "e\u0301",
  "..",
  "../../etc/passwd",
  "%2e%2e%2f",
  "' OR 1=1 --",
  '"; DROP TABLE connectors; --',
  "{{api_key}}",
  "${process.env}",
  "__proto__",
  "constructor",
  "-1",
  "0",
  "1e400",
  "NaN",
  "9".repeat(400)
]

const nastyString = fc.oneof(
  fc.constantFrom(...nasty),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ maxLength: 2000 }).map((s) => s.repeat(50))
)

/** Percent-encode every byte (lone surrogates become U+FFFD, where encodeURIComponent throws). */
const encode = (s: string) => [...Buffer.from(s, "utf8")].map((b) => `%${b.toString(16).padStart(2, "0")}`).join("")

const segment = (valid: string) =>
  fc.oneof(
    { weight: 1, arbitrary: fc.constant(valid) },
    { weight: 3, arbitrary: nastyString.map(encode) },
    { weight: 1, arbitrary: fc.constantFrom("%ff", "%E0%A4%A", "%", "%00", "%2F..%2F", "a%20b") }
  )

const fieldNames = [
  "name",
  "display_name",
  "auth_patterns",
  "values",
  "security",
  "headers",
  "id",
  "arguments",
  "version",
  "proxy_url",
  "kind",
  "fields",
  "type",
  "mcp",
  "__proto__",
  "constructor"
]

const deep = (n: number, open: string, close: string) => open.repeat(n) + close.repeat(n)

const body: fc.Arbitrary<string | Buffer | undefined> = fc.oneof(
  fc.constant(undefined),
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
  fc
    .dictionary(fc.constantFrom(...fieldNames), fc.oneof(fc.jsonValue({ maxDepth: 3 }), nastyString))
    .map((v) => JSON.stringify(v)),
  fc
    .record({ name: nastyString, display_name: nastyString, auth_patterns: fc.jsonValue({ maxDepth: 3 }) })
    .map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
  fc.constantFrom("{", "[", '{"a":', "nul", "{'a':1}", '{"a":1,}', "\ufeff{}", '{"a":"\\ud800"}', "[]".repeat(10)),
  fc.integer({ min: 1000, max: 20_000 }).map((n) => deep(n, "[", "]")),
  fc.integer({ min: 1000, max: 20_000 }).map((n) => `${'{"a":'.repeat(n)}1${"}".repeat(n)}`),
  fc.integer({ min: 100_000, max: 900_000 }).map((n) => JSON.stringify({ name: "x".repeat(n) })),
  fc.uint8Array({ minLength: 1, maxLength: 200 }).map((a) => Buffer.from(a))
)

const query = fc.option(
  fc
    .array(
      fc.tuple(fc.constantFrom("limit", "cursor", "kind", "name_prefix", "status", "connector", "x"), nastyString),
      {
        maxLength: 4
      }
    )
    .map((pairs) => `?${pairs.map(([k, v]) => `${k}=${encode(v)}`).join("&")}`),
  { nil: "" }
)

const contentType = fc.constantFrom(
  "application/json",
  "application/json; charset=utf-16",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x"
)

const check = (
  endpoint: Endpoint,
  req: { path: string; method: string; headers?: unknown; chunked?: boolean; body?: unknown },
  res: Raw
) => {
  figures.requests++
  if (res.status >= 500) {
    const upstreamFailure = endpoint.upstream === true && (res.status === 502 || res.status === 504)
    assert.isTrue(upstreamFailure, `${req.method} ${req.path.slice(0, 200)} → ${res.status} ${res.text.slice(0, 500)}`)
    figures.upstream5xx++
  }
  if (res.status >= 400) {
    figures.status4xx++
    if (res.status === 413) figures.tooLarge++
    // The proxy passes upstream answers as they are; everything else is the one error shape.
    if (res.headers["x-switchboard-upstream"] === undefined) {
      assert.isTrue(
        isErrorShape(res),
        `${req.method} ${req.path.slice(0, 200)} → ${res.status} ${JSON.stringify(res.headers)} ${res.text.slice(0, 300)} (sent ${JSON.stringify(req.headers)} ${req.chunked} ${String(req.body).slice(0, 100)})`
      )
    }
  }
}

const track = (req: { method: string; path: string }, res: Raw) => {
  if (req.method === "POST" && req.path.split("?")[0] === "/v1/connectors" && res.status === 201) {
    acknowledged.add(json(res).id)
  }
  const del = /^\/v1\/connectors\/([^/?]+)$/.exec(req.path.split("?")[0] ?? "")
  if (req.method === "DELETE" && del !== null && res.status < 300) deleted.add(decodeURIComponent(del[1] ?? ""))
}

describe("fuzzing the REST API of the daemon process", () => {
  it("answers every endpoint without a 5xx, in the error shape, and keeps serving", async () => {
    for (const endpoint of endpoints) {
      const request = fc.record({
        c: segment("fz"),
        id: segment(seed.connectorId),
        conn: segment(seed.connectionId),
        scope: segment("user"),
        v: segment(String(seed.version)),
        name: segment("default"),
        tool: segment("echo"),
        query,
        body: endpoint.method === "GET" || endpoint.method === "DELETE" ? fc.option(body, { freq: 4 }) : body,
        contentType,
        chunked: fc.boolean()
      })
      // oxlint-disable-next-line no-await-in-loop -- one endpoint at a time keeps failures readable
      await fc.assert(
        fc.asyncProperty(request, async (r) => {
          const path =
            endpoint.path
              .replace("{c}", r.c)
              .replace("{id}", r.id)
              .replace("{conn}", r.conn)
              .replace("{scope}", r.scope)
              .replace("{v}", r.v)
              .replace("{name}", r.name)
              .replace("{tool}", r.tool) + r.query
          const req = {
            method: endpoint.method,
            path,
            body: r.body ?? undefined,
            chunked: r.chunked,
            headers: r.body === undefined || r.body === null ? {} : { "content-type": r.contentType }
          }
          const res = await send(box.socket, req)
          check(endpoint, req, res)
          track(req, res)
        }),
        { numRuns: 60, seed: 10_2026, endOnFailure: true }
      )
    }
    const health = await send(box.socket, { method: "GET", path: "/healthz" })
    assert.strictEqual(health.status, 200)
  }, 120_000)

  it("refuses an API body over 1 MiB with 413 in the error shape, declared or chunked, but not on the proxy", async () => {
    const big = JSON.stringify({ name: "big", display_name: "x".repeat(1024 * 1024 + 10) })
    const declared = await send(box.socket, { method: "POST", path: "/v1/connectors", body: big })
    assert.strictEqual(declared.status, 413)
    assert.isTrue(isErrorShape(declared))
    assert.strictEqual(json(declared).error.code, "payload_too_large")
    const chunked = await send(box.socket, { method: "POST", path: "/v1/connectors", body: big, chunked: true })
    assert.strictEqual(chunked.status, 413)
    assert.strictEqual(json(chunked).error.code, "payload_too_large")
    const patch = await send(box.socket, { method: "PATCH", path: `/v1/connectors/${seed.connectorId}`, body: big })
    assert.strictEqual(patch.status, 413)
    // Just under the limit is read and validated (422: the connector is invalid), not refused for its size.
    const under = JSON.stringify({ name: "under", display_name: "x".repeat(1024 * 1024 - 100) })
    const ok = await send(box.socket, { method: "POST", path: "/v1/connectors", body: under })
    assert.notStrictEqual(ok.status, 413)
    assert.isBelow(ok.status, 500)
    // The proxy streams bodies upstream: no API limit there (the upstream, a closed port, fails instead).
    const proxied = await send(box.socket, {
      method: "POST",
      path: `/v1/connections/${seed.connectionId}/proxy/upload`,
      body: Buffer.alloc(2 * 1024 * 1024, 0x61),
      headers: { "content-type": "application/octet-stream" }
    })
    assert.notStrictEqual(proxied.status, 413)
    figures.tooLarge += 3
    const health = await send(box.socket, { method: "GET", path: "/healthz" })
    assert.strictEqual(health.status, 200)
  })

  it("left the store consistent: exactly the acknowledged connectors, each readable, integrity ok", async () => {
    const listed = new Set<string>()
    let cursor: string | undefined
    for (let page = 0; page < 100; page++) {
      // oxlint-disable-next-line no-await-in-loop -- keyset pages are sequential
      const res = await send(box.socket, {
        method: "GET",
        path: `/v1/connectors?limit=100${cursor === undefined ? "" : `&cursor=${encodeURIComponent(cursor)}`}`
      })
      assert.strictEqual(res.status, 200, res.text)
      const body = json(res)
      for (const c of body.data) listed.add(c.id)
      if (!body.has_more) break
      cursor = body.next_cursor
    }
    const expected = new Set([...acknowledged].filter((id) => !deleted.has(id)))
    assert.deepStrictEqual([...listed].sort(), [...expected].sort())
    for (const id of listed) {
      // oxlint-disable-next-line no-await-in-loop -- a few reads
      const one = await send(box.socket, { method: "GET", path: `/v1/connectors/${id}` })
      assert.strictEqual(one.status, 200, one.text)
    }
    const conns = await send(box.socket, { method: "GET", path: "/v1/connections?limit=100" })
    assert.strictEqual(conns.status, 200)
    for (const c of json(conns).data) {
      // oxlint-disable-next-line no-await-in-loop -- a few reads
      const one = await send(box.socket, { method: "GET", path: `/v1/connections/${c.id}` })
      assert.strictEqual(one.status, 200, one.text)
    }
    const db = new DatabaseSync(Path.join(box.home, "switchboard.db"), { readOnly: true })
    try {
      const rows = db.prepare("PRAGMA integrity_check").all() as Array<Record<string, unknown>>
      assert.deepStrictEqual(
        rows.map((r) => Object.values(r)[0]),
        ["ok"]
      )
    } finally {
      db.close()
    }
    assert.isTrue(daemon.child.exitCode === null, "the daemon is still running")
    assert.isFalse(Fs.readFileSync(Path.join(box.dir, "daemon.log"), "utf8").includes("Unhandled"))
  })
})

describe("fuzzing the MCP management tools of switchboard mcp", () => {
  let data: McpHarness.DataDir
  let session: McpHarness.Session
  beforeAll(async () => {
    data = McpHarness.dataDir()
    session = await McpHarness.start(data.home)
  }, 60_000)
  afterAll(async () => {
    await session?.close()
    data?.cleanup()
  })

  it("answers every call with a result or a tool error, never a broken session", async () => {
    const names = ["switchboard__list_connectors", "switchboard__list_connections", "switchboard__auth_link"]
    const args = fc.dictionary(
      fc.oneof(fc.constantFrom("connection", "connector", "name", "limit", "cursor", "__proto__"), fc.string()),
      fc.oneof(fc.jsonValue({ maxDepth: 3 }), nastyString),
      { maxKeys: 4 }
    )
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...names), args, async (name, a) => {
        figures.requests++
        const result = await session.call(name, a as Record<string, unknown>).catch((error: unknown) => ({
          rpcError: String(error)
        }))
        // A JSON-RPC error for bad params is a clear answer too; what must never happen is a dead session.
        assert.isDefined(result)
      }),
      { numRuns: 60, seed: 10_2026 }
    )
    assert.deepStrictEqual(session.errors, [])
    const tools = await session.list()
    assert.includeMembers(
      tools.map((t) => t.name),
      names
    )
  }, 60_000)
})
