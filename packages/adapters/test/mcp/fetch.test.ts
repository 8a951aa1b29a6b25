/**
 * The `fetch` the MCP transports get: the SSRF guard on every request with the connection pinned to the
 * checked address (a name only a test resolver knows still connects, so no second lookup happened),
 * refusals before anything is sent, credentials (headers and query) only on requests to the server's own
 * origin with the transport's own headers kept, and redirects never followed by fetch itself; one lookup per host
 * for a session (a refusal is never remembered), and response bodies streamed, a cut-off one failing. Plain HTTP
 * servers on 127.0.0.1 record what arrives.
 */
import { assert, describe, it } from "@effect/vitest"
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js"
import { UpstreamError } from "@switchboard/core/Errors"
import type { McpTarget } from "@switchboard/core/McpUpstream"
import { Resolver as ResolverPort } from "@switchboard/core/Resolver"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { createServer, type IncomingHttpHeaders } from "node:http"
import type { AddressInfo } from "node:net"
import * as Resolver from "../../src/http/Resolver.ts"
import { makeAgents, pinnedFetch } from "../../src/mcp/internal/fetch.ts"
import { withCredentials } from "../../src/mcp/internal/session.ts"

interface Seen {
  readonly url: string
  readonly headers: IncomingHttpHeaders
}

const server = (status = 200, headers: Record<string, string> = {}) =>
  Effect.acquireRelease(
    Effect.promise(
      () =>
        new Promise<{ readonly port: number; readonly seen: Array<Seen>; readonly close: () => void }>((resolve) => {
          const seen: Array<Seen> = []
          const http = createServer((req, res) => {
            seen.push({ url: req.url ?? "", headers: req.headers })
            res.writeHead(status, headers).end("ok")
          })
          http.listen(0, "127.0.0.1", () => {
            resolve({
              port: (http.address() as AddressInfo).port,
              seen,
              close: () => {
                http.closeAllConnections()
                http.close()
              }
            })
          })
        })
    ),
    (s) => Effect.sync(s.close)
  )

/** A guarded fetch whose DNS is a fixed table: `mcp.test` and `other.test` are 127.0.0.1, `lan.test` private. */
const guarded = (allowPrivateNetwork: boolean, onLookup?: (hostname: string) => void) =>
  Effect.gen(function* () {
    const agents = yield* Effect.acquireRelease(Effect.sync(makeAgents), (a) => Effect.sync(a.destroy))
    const resolver = yield* ResolverPort.pipe(
      Effect.provide(
        Resolver.layerTable(
          { "mcp.test": [["127.0.0.1"]], "other.test": [["127.0.0.1"]], "lan.test": [["10.9.9.9"]] },
          onLookup
        )
      )
    )
    return pinnedFetch({ resolver, allowPrivateNetwork, agents })
  })

const target = (url: string): Extract<McpTarget, { _tag: "Http" }> => ({
  _tag: "Http",
  key: "conn_1",
  url,
  headers: { Authorization: Redacted.make("Bearer tok"), "Mcp-Session-Id": Redacted.make("configured") },
  query: { key: Redacted.make("k 1") },
  allowPrivateNetwork: true
})

const attempt = (fetch: FetchLike, url: string) =>
  Effect.promise(() =>
    fetch(url).then(
      (response) => response,
      (error: unknown) => error
    )
  )

describe("pinnedFetch", () => {
  it.live("connects to the address the guard checked, by a name only the test resolver knows", () =>
    Effect.gen(function* () {
      const own = yield* server()
      const fetch = yield* guarded(true)
      const response = yield* Effect.promise(() => fetch(`http://mcp.test:${own.port}/mcp`))
      assert.strictEqual(response.status, 200)
      assert.strictEqual(yield* Effect.promise(() => response.text()), "ok")
      assert.strictEqual(own.seen[0]?.headers.host, `mcp.test:${own.port}`)
    })
  )

  it.live("refuses loopback and private destinations before sending anything", () =>
    Effect.gen(function* () {
      const own = yield* server()
      const fetch = yield* guarded(false)
      for (const url of [`http://127.0.0.1:${own.port}/`, `http://mcp.test:${own.port}/`, "http://lan.test/"]) {
        const error = yield* attempt(fetch, url)
        assert.instanceOf(error, UpstreamError, url)
        assert.strictEqual(error.reason, "destination_refused")
      }
      assert.strictEqual(own.seen.length, 0)
    })
  )

  it.live("looks a host up once per session: later requests go to the address already checked", () =>
    Effect.gen(function* () {
      const own = yield* server()
      const lookups: Array<string> = []
      const fetch = yield* guarded(true, (hostname) => lookups.push(hostname))
      for (let i = 0; i < 3; i++) {
        const response = yield* Effect.promise(() => fetch(`http://mcp.test:${own.port}/mcp?call=${i}`))
        assert.strictEqual(yield* Effect.promise(() => response.text()), "ok")
      }
      assert.deepStrictEqual(lookups, ["mcp.test"])
      assert.deepStrictEqual(
        own.seen.map((s) => s.url),
        ["/mcp?call=0", "/mcp?call=1", "/mcp?call=2"]
      )
      // Another session (another fetch) looks the host up again.
      const next = yield* guarded(true, (hostname) => lookups.push(hostname))
      yield* Effect.promise(() => next(`http://mcp.test:${own.port}/mcp`).then((r) => r.text()))
      assert.deepStrictEqual(lookups, ["mcp.test", "mcp.test"])
    })
  )

  it.live("a refused destination stays refused on every request", () =>
    Effect.gen(function* () {
      const own = yield* server()
      const lookups: Array<string> = []
      const fetch = yield* guarded(false, (hostname) => lookups.push(hostname))
      for (let i = 0; i < 2; i++) {
        const error = yield* attempt(fetch, `http://mcp.test:${own.port}/`)
        assert.instanceOf(error, UpstreamError)
        assert.strictEqual(error.reason, "destination_refused")
      }
      assert.deepStrictEqual(lookups, ["mcp.test", "mcp.test"])
      assert.strictEqual(own.seen.length, 0)
    })
  )

  it.live("streams the body as it arrives, and a body cut off before its end fails the read", () =>
    Effect.gen(function* () {
      const cut = yield* Effect.acquireRelease(
        Effect.promise(
          () =>
            new Promise<{ readonly port: number; readonly close: () => void }>((resolve) => {
              const http = createServer((req, res) => {
                res.writeHead(200, { "content-type": "text/event-stream" })
                // The first event, then the connection drops once the client has read it.
                res.write("data: first\n\n")
                req.socket.setTimeout(50, () => req.socket.destroy())
              })
              http.listen(0, "127.0.0.1", () =>
                resolve({
                  port: (http.address() as AddressInfo).port,
                  close: () => {
                    http.closeAllConnections()
                    http.close()
                  }
                })
              )
            })
        ),
        (s) => Effect.sync(s.close)
      )
      const fetch = yield* guarded(true)
      const response = yield* Effect.promise(() => fetch(`http://127.0.0.1:${cut.port}/`))
      const reader = (response.body as ReadableStream<Uint8Array>).getReader()
      const first = yield* Effect.promise(() => reader.read())
      assert.strictEqual(new TextDecoder().decode(first.value), "data: first\n\n")
      const rest = yield* Effect.promise(() =>
        reader.read().then(
          () => "ended",
          () => "failed"
        )
      )
      assert.strictEqual(rest, "failed")
    })
  )

  it.live("never follows a redirect by itself", () =>
    Effect.gen(function* () {
      const elsewhere = yield* server()
      const redirecting = yield* server(307, { location: `http://127.0.0.1:${elsewhere.port}/stolen` })
      const fetch = yield* guarded(true)
      const response = yield* Effect.promise(() => fetch(`http://127.0.0.1:${redirecting.port}/`))
      assert.strictEqual(response.status, 307)
      assert.strictEqual(elsewhere.seen.length, 0)
    })
  )
})

describe("withCredentials", () => {
  it.live("adds credentials for the server's origin only; the transport's headers win", () =>
    Effect.gen(function* () {
      const own = yield* server()
      const other = yield* server()
      const fetch = withCredentials(target(`http://mcp.test:${own.port}/mcp?team=blue`), yield* guarded(true))
      yield* Effect.promise(() =>
        fetch(`http://mcp.test:${own.port}/mcp?team=blue`, {
          method: "POST",
          headers: { "mcp-session-id": "from-transport" }
        })
      )
      yield* Effect.promise(() => fetch(`http://other.test:${other.port}/elsewhere`))
      assert.strictEqual(own.seen[0]?.url, "/mcp?team=blue&key=k+1")
      assert.strictEqual(own.seen[0]?.headers.authorization, "Bearer tok")
      assert.strictEqual(own.seen[0]?.headers["mcp-session-id"], "from-transport")
      assert.strictEqual(other.seen[0]?.url, "/elsewhere")
      assert.isUndefined(other.seen[0]?.headers.authorization)
    })
  )
})
