/**
 * The HTTP proxy route through the real socket server (in process, memory store, the SSRF-guarded client) against a
 * recording upstream on 127.0.0.1: method, path, query and headers forwarded, the connection's credential injected
 * and the caller's dropped, multi-MB bodies streamed both ways (checked by digest), upstream errors passed through
 * as responses, and the daemon's own refusals in the one error shape (403 `destination_refused`, 429 with
 * `Retry-After`, 404, 400). A canary credential appears in no response.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Path from "node:path"
import { afterAll } from "vitest"
import { recorder, responseTexts, tempDir } from "../support.ts"
import { CANARY, header, pattern, restConnector, serverLayer, sha256, type Upstream, upstream } from "./support.ts"

const root = tempDir()
afterAll(() => Fs.rmSync(root, { recursive: true, force: true }))
let n = 0

interface Sent {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly body: Buffer
}

/** One request over the socket, its body written in 64 KiB chunks (chunked unless a content-length is given). */
const send = (
  socket: string,
  method: string,
  path: string,
  options: { readonly headers?: Record<string, string>; readonly body?: Buffer } = {}
) =>
  Effect.promise(
    () =>
      new Promise<Sent>((resolve, reject) => {
        const req = Http.request(
          { socketPath: socket, method, path, headers: { host: "switchboard", ...options.headers }, agent: false },
          (res) => {
            const chunks: Array<Buffer> = []
            res.on("data", (c: Buffer) => chunks.push(c))
            res.on("end", () =>
              resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) })
            )
            res.on("error", reject)
          }
        )
        req.on("error", reject)
        const body = options.body
        if (body !== undefined) for (let i = 0; i < body.length; i += 65536) req.write(body.subarray(i, i + 65536))
        req.end()
      })
  )

const setup = Effect.gen(function* () {
  const up = yield* upstream
  const socket = Path.join(root, `p${n++}`, "sb.sock")
  const context = yield* Layer.build(serverLayer(socket))
  const raw = recorder(socket)
  const sent: Array<Sent> = []
  const call = (method: string, path: string, options: { headers?: Record<string, string>; body?: Buffer } = {}) =>
    Effect.tap(send(socket, method, path, options), (r) => Effect.sync(() => sent.push(r)))
  const connect = (name: string, extra: Record<string, unknown> = {}) =>
    raw.json("POST", `/v1/connectors/${name}/connections`, {
      name: `${name}-conn`,
      security: { api_key: CANARY },
      allow_private_network: true,
      ...extra
    })
  const texts = () => [
    ...responseTexts(raw.seen),
    ...sent.flatMap((r) => [JSON.stringify(r.headers), r.body.toString("latin1")])
  ]
  return { up, socket, raw, call, connect, texts, context }
})

const connectorFor = (up: Upstream, name = "acme") => restConnector(name, up.origin)

describe("the proxy route", () => {
  it.live("forwards method, path, query and end-to-end headers; injects the credential, drops the caller's", () =>
    Effect.gen(function* () {
      const { up, raw, call, connect, texts } = yield* setup
      assert.strictEqual((yield* raw.json("POST", "/v1/connectors", connectorFor(up))).status, 201)
      const conn = yield* connect("acme")
      assert.strictEqual(conn.status, 201, conn.text)
      const res = yield* call("GET", `/v1/connections/${conn.json.id}/proxy/users/42?q=a%20b&tag=x&tag=y`, {
        headers: {
          accept: "application/json",
          "x-custom": "kept",
          authorization: "Bearer caller-own-token",
          cookie: "caller=cookie",
          "x-switchboard-user": "tester",
          "x-switchboard-role": "admin"
        }
      })
      assert.strictEqual(res.status, 200, res.body.toString())
      assert.deepStrictEqual(JSON.parse(res.body.toString()), { ok: true, method: "GET", path: "/api/users/42" })
      assert.strictEqual(res.headers["x-switchboard-upstream"], "1")
      assert.strictEqual(res.headers["x-kept"], "yes")
      assert.isUndefined(res.headers["set-cookie"])
      assert.isUndefined(res.headers["keep-alive"])

      const seen = up.seen.at(-1)
      assert.strictEqual(seen?.method, "GET")
      assert.strictEqual(seen?.url, "/api/users/42?q=a+b&tag=x&tag=y")
      assert.deepStrictEqual(header(seen, "x-api-key"), [CANARY])
      assert.deepStrictEqual(header(seen, "x-custom"), ["kept"])
      assert.deepStrictEqual(header(seen, "accept"), ["application/json"])
      assert.deepStrictEqual(header(seen, "authorization"), [])
      assert.deepStrictEqual(header(seen, "cookie"), [])
      assert.isFalse(seen?.headers.some(([k]) => k.toLowerCase().startsWith("x-switchboard-")))

      // by name too, and the bare route goes to the base URL
      const byName = yield* call("DELETE", "/v1/connections/acme-conn/proxy")
      assert.strictEqual(byName.status, 200)
      assert.strictEqual(up.seen.at(-1)?.url, "/api")
      assert.strictEqual(up.seen.at(-1)?.method, "DELETE")

      const head = yield* call("HEAD", `/v1/connections/${conn.json.id}/proxy/users/42`)
      assert.strictEqual(head.status, 200)
      assert.strictEqual(head.body.length, 0)
      assert.strictEqual(up.seen.at(-1)?.method, "HEAD")

      const audit = yield* raw.request("GET", "/v1/audit?action=connection.proxy")
      assert.strictEqual(audit.json.data.length, 3)
      assert.deepInclude(audit.json.data[2], { path: "/users/42", status: 200, method: "GET", outcome: "success" })
      for (const text of texts()) assert.notInclude(text, CANARY)
    })
  )

  it.live("streams multi-MB bodies both ways", () =>
    Effect.gen(function* () {
      const { up, raw, call, connect } = yield* setup
      yield* raw.json("POST", "/v1/connectors", connectorFor(up))
      const conn = yield* connect("acme")
      const size = 6 * 1024 * 1024 + 123
      const body = pattern(size)
      const digest = sha256(body)

      // chunked upload, piped back by the upstream
      const piped = yield* call("POST", `/v1/connections/${conn.json.id}/proxy/pipe`, {
        headers: { "content-type": "application/octet-stream" },
        body
      })
      assert.strictEqual(piped.status, 200)
      assert.strictEqual(piped.body.length, size)
      assert.strictEqual(sha256(piped.body), digest)
      assert.deepStrictEqual(header(up.seen.at(-1), "transfer-encoding"), ["chunked"])

      // an upload with its length: the upstream gets exactly those bytes
      const put = yield* call("PUT", `/v1/connections/${conn.json.id}/proxy/upload`, {
        headers: { "content-type": "application/octet-stream", "content-length": String(size) },
        body
      })
      assert.strictEqual(put.status, 200)
      assert.strictEqual(up.seen.at(-1)?.bytes, size)
      assert.strictEqual(up.seen.at(-1)?.sha256, digest)
      assert.deepStrictEqual(header(up.seen.at(-1), "content-length"), [String(size)])

      // a large download
      const down = yield* call("GET", `/v1/connections/${conn.json.id}/proxy/big/${size}`)
      assert.strictEqual(down.status, 200)
      assert.strictEqual(down.headers["content-length"], String(size))
      assert.strictEqual(sha256(down.body), digest)
    })
  )

  it.live("nothing waits for a whole body: the first chunk's echo arrives before the second chunk is sent", () =>
    Effect.gen(function* () {
      const { up, raw, connect, socket } = yield* setup
      yield* raw.json("POST", "/v1/connectors", connectorFor(up))
      const conn = yield* connect("acme")
      const first = pattern(256 * 1024)
      const second = Buffer.from("and the rest")
      // Would deadlock (and time out) if the daemon buffered the request or the response body.
      const echoed = yield* Effect.promise(
        () =>
          new Promise<Buffer>((resolve, reject) => {
            const req = Http.request(
              {
                socketPath: socket,
                method: "POST",
                path: `/v1/connections/${conn.json.id}/proxy/pipe`,
                headers: { host: "switchboard", "content-type": "application/octet-stream" },
                agent: false
              },
              (res) => {
                const chunks: Array<Buffer> = []
                let received = 0
                let sent = false
                res.on("data", (c: Buffer) => {
                  chunks.push(c)
                  received += c.length
                  if (!sent && received >= first.length) {
                    sent = true
                    req.end(second)
                  }
                })
                res.on("end", () => resolve(Buffer.concat(chunks)))
              }
            )
            req.on("error", reject)
            req.write(first)
          })
      ).pipe(Effect.timeout("20 seconds"))
      assert.isTrue(echoed.equals(Buffer.concat([first, second])))
    })
  )

  it.live("an upstream error is the upstream's response, passed through", () =>
    Effect.gen(function* () {
      const { up, raw, call, connect } = yield* setup
      yield* raw.json("POST", "/v1/connectors", connectorFor(up))
      const conn = yield* connect("acme")
      for (const status of [500, 404, 401]) {
        const res = yield* call("POST", `/v1/connections/${conn.json.id}/proxy/status/${status}`, {
          headers: { "content-type": "application/json" },
          body: Buffer.from('{"x":1}')
        })
        assert.strictEqual(res.status, status)
        assert.strictEqual(res.body.toString(), `upstream answered ${status}`)
        assert.strictEqual(res.headers["content-type"], "text/plain")
        assert.strictEqual(res.headers["x-switchboard-upstream"], "1")
      }
    })
  )

  it.live("the daemon's refusals: private target 403, rate limit 429 with Retry-After, 404, 400", () =>
    Effect.gen(function* () {
      const { up, raw, call, connect, texts } = yield* setup
      yield* raw.json("POST", "/v1/connectors", connectorFor(up))
      const closed = yield* connect("acme", { name: "closed", allow_private_network: false })
      const before = up.seen.length
      const refused = yield* call("GET", `/v1/connections/${closed.json.id}/proxy/x`)
      assert.strictEqual(refused.status, 403)
      assert.strictEqual(refused.headers["content-type"], "application/json")
      assert.isUndefined(refused.headers["x-switchboard-upstream"])
      const body = JSON.parse(refused.body.toString())
      assert.strictEqual(body.error.code, "destination_refused")
      assert.include(body.error.message, "127.0.0.1")
      assert.strictEqual(up.seen.length, before, "nothing reached the upstream")

      const limited = yield* connect("acme", {
        name: "limited",
        rate_limit: { requests_per_second: 0.01, burst: 1 }
      })
      assert.strictEqual((yield* call("GET", `/v1/connections/${limited.json.id}/proxy/a`)).status, 200)
      const second = yield* call("GET", `/v1/connections/${limited.json.id}/proxy/a`)
      assert.strictEqual(second.status, 429)
      assert.match(String(second.headers["retry-after"]), /^\d+$/)
      assert.isAbove(Number(second.headers["retry-after"]), 0)
      assert.strictEqual(JSON.parse(second.body.toString()).error.code, "rate_limited")

      const missing = yield* call("GET", "/v1/connections/conn_nope/proxy/a")
      assert.strictEqual(missing.status, 404)
      assert.strictEqual(JSON.parse(missing.body.toString()).error.code, "connection_not_found")

      const climb = yield* call("GET", `/v1/connections/${closed.json.id}/proxy/a/%2e%2e/%2e%2e/etc`)
      assert.strictEqual(climb.status, 400)
      assert.strictEqual(JSON.parse(climb.body.toString()).error.code, "invalid_parameter")

      const trace = yield* call("TRACE", `/v1/connections/${closed.json.id}/proxy/a`)
      assert.strictEqual(trace.status, 400)

      const untrusted = yield* call("GET", `/v1/connections/${closed.json.id}/proxy/a`, {
        headers: { "x-switchboard-role": "admin" }
      })
      assert.strictEqual(untrusted.status, 400, "a role without a user is refused")
      for (const text of texts()) assert.notInclude(text, CANARY)
    })
  )

  it.live("another user's personal connection is not found; a viewer may not call", () =>
    Effect.gen(function* () {
      const { up, raw, call, connect } = yield* setup
      yield* raw.json("POST", "/v1/connectors", connectorFor(up))
      const conn = yield* connect("acme")
      const other = yield* call("GET", `/v1/connections/${conn.json.id}/proxy/a`, {
        headers: { "x-switchboard-user": "mallory", "x-switchboard-role": "admin" }
      })
      assert.strictEqual(other.status, 404)
      const viewer = yield* call("GET", `/v1/connections/${conn.json.id}/proxy/a`, {
        headers: { "x-switchboard-user": "tester", "x-switchboard-role": "viewer" }
      })
      assert.strictEqual(viewer.status, 403)
      assert.strictEqual(JSON.parse(viewer.body.toString()).error.code, "forbidden")
    })
  )
})
