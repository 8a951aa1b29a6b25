/**
 * The guarded HTTP client against real servers on 127.0.0.1: pinning to the checked address, streaming both
 * ways, secrets revealed only on the wire, redirects (followed, re-checked, limited, credentials kept to their
 * origin), timeouts and connection failures. Connection attempts go through a recording, loopback-confined hook.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import * as Https from "node:https"
import type * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Upstream as UpstreamPort, type UpstreamRequest } from "@switchboard/core/Upstream"
import * as Resolver from "../../src/http/Resolver.ts"
import * as Upstream from "../../src/http/Upstream.ts"
import { echo, freePort, recordingConnect, server, silentServer, text } from "./support.ts"

const use = (options: Upstream.Options, table: Parameters<typeof Resolver.layerTable>[0] = {}) => {
  const lookups: Array<string> = []
  const layer = Upstream.layerWith(options).pipe(Layer.provide(Resolver.layerTable(table, (h) => lookups.push(h))))
  return { layer, lookups }
}

const call = (req: Partial<UpstreamRequest> & Pick<UpstreamRequest, "url">) =>
  UpstreamPort.use((u) => u.request({ method: "GET", headers: {}, allowPrivateNetwork: true, ...req }))

const readAll = (body: Stream.Stream<Uint8Array, unknown>) => Effect.map(Stream.runCollect(body), text)

const header = (rawHeaders: ReadonlyArray<string>, name: string) => {
  const values: Array<string> = []
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() === name.toLowerCase()) values.push(rawHeaders[i + 1] ?? "")
  }
  return values
}

describe("Upstream (node:http)", () => {
  it.live(
    "connects to the checked address, with the URL's host as Host header, revealing secrets only on the wire",
    () =>
      Effect.gen(function* () {
        const srv = yield* server(echo)
        const rec = recordingConnect()
        const { layer, lookups } = use({ connect: rec.connect }, { "api.test": [["127.0.0.1"]] })
        const response = yield* call({
          url: `http://api.test:${srv.port}/v1/items?q=a%20b`,
          headers: { "X-Secret": Redacted.make("s3cr3t"), Accept: "application/json" }
        }).pipe(Effect.provide(layer))
        assert.strictEqual(response.status, 200)
        const seen = JSON.parse(yield* readAll(response.body)) as { url: string; rawHeaders: Array<string> }
        assert.strictEqual(seen.url, "/v1/items?q=a%20b")
        assert.deepStrictEqual(header(seen.rawHeaders, "host"), [`api.test:${srv.port}`])
        assert.deepStrictEqual(header(seen.rawHeaders, "x-secret"), ["s3cr3t"])
        assert.deepStrictEqual(header(seen.rawHeaders, "accept"), ["application/json"])
        assert.deepStrictEqual(lookups, ["api.test"])
        assert.deepStrictEqual(
          rec.attempts.map((a) => [a.address, a.port, a.hostname, a.tls]),
          [["127.0.0.1", srv.port, "api.test", false]]
        )
      })
  )

  it.live("refuses loopback without allow_private_network, before any connection", () =>
    Effect.gen(function* () {
      const srv = yield* server(echo)
      const rec = recordingConnect()
      const error = yield* call({ url: `${srv.origin}/`, allowPrivateNetwork: false }).pipe(
        Effect.provide(use({ connect: rec.connect }).layer),
        Effect.flip
      )
      assert.strictEqual(error.reason, "destination_refused")
      assert.include(error.message, "refused 127.0.0.1 (loopback, RFC 1122) for host 127.0.0.1")
      assert.strictEqual(rec.attempts.length, 0)
      assert.strictEqual(srv.connections(), 0)
      // The daemon-wide switch allows it for every request.
      const allowed = yield* call({ url: `${srv.origin}/`, allowPrivateNetwork: false }).pipe(
        Effect.provide(use({ connect: rec.connect, allowPrivateNetwork: true }).layer)
      )
      assert.strictEqual(allowed.status, 200)
    })
  )

  it.live("streams a large body both ways without collecting it", () =>
    Effect.gen(function* () {
      // The server pipes the request into the response. The body stops after its first megabyte until the
      // first response bytes are back: if either direction were collected first, this would never finish.
      const srv = yield* server((req, res) => req.pipe(res), { raw: true })
      const size = 8 * 1024 * 1024
      const piece = 64 * 1024
      const echoed = yield* Deferred.make<void>()
      const sent = createHash("sha256")
      const pieces = (from: number, to: number) =>
        Stream.fromIterable(
          (function* () {
            for (let offset = from; offset < to; offset += piece) {
              const chunk = new Uint8Array(piece).map((_, i) => (offset + i) % 251)
              sent.update(chunk)
              yield chunk
            }
          })()
        )
      const body = pieces(0, 1024 * 1024).pipe(
        Stream.concat(Stream.drain(Stream.fromEffect(Deferred.await(echoed)))),
        Stream.concat(pieces(1024 * 1024, size))
      )
      const response = yield* call({ method: "PUT", url: `${srv.origin}/pipe`, body }).pipe(
        Effect.provide(use({}).layer)
      )
      const received = createHash("sha256")
      let bytes = 0
      yield* Stream.runForEach(response.body, (chunk) =>
        Effect.suspend(() => {
          bytes += chunk.byteLength
          received.update(chunk)
          return Deferred.succeed(echoed, undefined)
        })
      )
      assert.strictEqual(bytes, size)
      assert.strictEqual(received.digest("hex"), sent.digest("hex"))
      assert.strictEqual(header(srv.seen[0]?.rawHeaders ?? [], "transfer-encoding")[0], "chunked")
    })
  )

  it.live("follows same-origin redirects for GET with the credentials; drops them on another origin", () =>
    Effect.gen(function* () {
      const other = yield* server(echo)
      const first = yield* server((req, res) => {
        if (req.url === "/start") res.writeHead(302, { location: "/moved" }).end()
        else res.writeHead(307, { location: `http://other.test:${other.port}/final` }).end()
      })
      const rec = recordingConnect()
      const { layer, lookups } = use({ connect: rec.connect }, { "other.test": [["127.0.0.1"]] })
      const response = yield* call({
        url: `${first.origin}/start`,
        headers: { Authorization: Redacted.make("Bearer t0ken"), "X-Trace": "abc" }
      }).pipe(Effect.provide(layer))
      assert.strictEqual(response.status, 200)
      const seen = JSON.parse(yield* readAll(response.body)) as { url: string; rawHeaders: Array<string> }
      assert.strictEqual(seen.url, "/final")
      assert.deepStrictEqual(header(seen.rawHeaders, "authorization"), [])
      assert.deepStrictEqual(header(seen.rawHeaders, "x-trace"), ["abc"])
      assert.deepStrictEqual(header(seen.rawHeaders, "host"), [`other.test:${other.port}`])
      assert.deepStrictEqual(
        first.seen.map((s) => [s.url, s.headers.authorization]),
        [
          ["/start", "Bearer t0ken"],
          ["/moved", "Bearer t0ken"]
        ]
      )
      assert.deepStrictEqual(lookups, ["other.test"])
      assert.strictEqual(rec.attempts.length, 3)
    })
  )

  it.live("does not follow redirects for other methods or with a body", () =>
    Effect.gen(function* () {
      const srv = yield* server((_req, res) => res.writeHead(303, { location: "/elsewhere" }).end())
      const post = yield* call({ method: "POST", url: `${srv.origin}/x` }).pipe(Effect.provide(use({}).layer))
      assert.strictEqual(post.status, 303)
      assert.strictEqual(post.headers.location, "/elsewhere")
      const withBody = yield* call({ url: `${srv.origin}/y`, body: Stream.make(new Uint8Array([1])) }).pipe(
        Effect.provide(use({}).layer)
      )
      assert.strictEqual(withBody.status, 303)
      assert.deepStrictEqual(
        srv.seen.map((s) => s.url),
        ["/x", "/y"]
      )
    })
  )

  it.live("stops after 5 redirects", () =>
    Effect.gen(function* () {
      const srv = yield* server((req, res) => {
        const n = Number((req.url ?? "/0").slice(1))
        res.writeHead(302, { location: `/${n + 1}` }).end()
      })
      const error = yield* call({ url: `${srv.origin}/0` }).pipe(Effect.provide(use({}).layer), Effect.flip)
      assert.strictEqual(error.reason, "upstream_protocol_error")
      assert.include(error.message, "too many redirects (more than 5)")
      assert.deepStrictEqual(
        srv.seen.map((s) => s.url),
        ["/0", "/1", "/2", "/3", "/4", "/5"]
      )
    })
  )

  it.live("re-checks every hop: a redirect from an allowed upstream to metadata or loopback is refused", () =>
    Effect.gen(function* () {
      const toMetadata = yield* server((_req, res) =>
        res.writeHead(302, { location: "http://169.254.169.254/latest/meta-data/iam/security-credentials/" }).end()
      )
      const rec = recordingConnect()
      const metadata = yield* call({ url: `${toMetadata.origin}/` }).pipe(
        Effect.provide(use({ connect: rec.connect }).layer),
        Effect.flip
      )
      assert.strictEqual(metadata.reason, "destination_refused")
      assert.include(metadata.message, "refused 169.254.169.254 (cloud metadata service)")
      assert.include(metadata.message, "(redirect 1)")
      assert.deepStrictEqual(
        rec.attempts.map((a) => a.address),
        ["127.0.0.1"]
      )

      // A public host (simulated on loopback) that redirects to 127.0.0.1, without allow_private_network.
      const toLoopback = yield* server((_req, res) =>
        res.writeHead(301, { location: `http://127.0.0.1:${toMetadata.port}/` }).end()
      )
      const rec2 = recordingConnect({ simulated: { "93.184.215.14": toLoopback.port } })
      const loopback = yield* call({ url: "http://public.test/", allowPrivateNetwork: false }).pipe(
        Effect.provide(use({ connect: rec2.connect }, { "public.test": [["93.184.215.14"]] }).layer),
        Effect.flip
      )
      assert.strictEqual(loopback.reason, "destination_refused")
      assert.include(loopback.message, "refused 127.0.0.1 (loopback, RFC 1122)")
      assert.deepStrictEqual(
        rec2.attempts.map((a) => a.address),
        ["93.184.215.14"]
      )
      assert.strictEqual(toMetadata.seen.length, 1)
    })
  )

  it.live("a rebinding resolver is asked once: the checked first answer is the one connected to", () =>
    Effect.gen(function* () {
      const srv = yield* server(echo)
      const rec = recordingConnect({ simulated: { "93.184.215.14": srv.port } })
      const { layer, lookups } = use({ connect: rec.connect }, { "rebind.test": [["93.184.215.14"], ["127.0.0.1"]] })
      const response = yield* call({ url: "http://rebind.test/a", allowPrivateNetwork: false }).pipe(
        Effect.provide(layer)
      )
      assert.strictEqual(response.status, 200)
      yield* Stream.runDrain(response.body)
      assert.deepStrictEqual(lookups, ["rebind.test"])
      assert.deepStrictEqual(
        rec.attempts.map((a) => [a.address, a.hostname]),
        [["93.184.215.14", "rebind.test"]]
      )
      assert.deepStrictEqual(header(srv.seen[0]?.rawHeaders ?? [], "host"), ["rebind.test"])
    })
  )

  it.live("times out connecting (a TLS handshake that never completes)", () =>
    Effect.gen(function* () {
      const port = yield* silentServer
      const error = yield* call({ url: `https://127.0.0.1:${port}/`, connectTimeoutMillis: 150 }).pipe(
        Effect.provide(use({}).layer),
        Effect.flip
      )
      assert.strictEqual(error.reason, "upstream_timeout")
      assert.strictEqual(error.status, 504)
      assert.deepInclude(error.details as object, { timeout: "connect", timeout_ms: 150 })
    })
  )

  it.live("times out in total, waiting for the head and while reading the body", () =>
    Effect.gen(function* () {
      const srv = yield* server(
        (req, res) => {
          if (req.url === "/body") {
            res.writeHead(200, { "content-type": "text/plain" })
            res.write("partial")
          }
        },
        { raw: true }
      )
      const head = yield* call({ url: `${srv.origin}/head`, totalTimeoutMillis: 200 }).pipe(
        Effect.provide(use({}).layer),
        Effect.flip
      )
      assert.strictEqual(head.reason, "upstream_timeout")
      assert.deepInclude(head.details as object, { timeout: "total", timeout_ms: 200 })
      const response = yield* call({ url: `${srv.origin}/body`, totalTimeoutMillis: 800 }).pipe(
        Effect.provide(use({}).layer)
      )
      assert.strictEqual(response.status, 200)
      const body = yield* Effect.flip(Stream.runDrain(response.body))
      assert.strictEqual(body.reason, "upstream_timeout")
    })
  )

  it.live("reports a refused connection as unreachable, naming host and endpoint only", () =>
    Effect.gen(function* () {
      const port = yield* freePort
      const error = yield* call({
        url: `http://127.0.0.1:${port}/path?token=s3cr3t`,
        headers: { Authorization: Redacted.make("s3cr3t") }
      }).pipe(Effect.provide(use({}).layer), Effect.flip)
      assert.strictEqual(error.reason, "upstream_unreachable")
      assert.strictEqual(error.message, `could not reach 127.0.0.1 (127.0.0.1:${port}): ECONNREFUSED`)
    })
  )

  it.live("refuses an invalid header value without sending it or echoing it", () =>
    Effect.gen(function* () {
      const srv = yield* server(echo)
      const error = yield* call({
        url: `${srv.origin}/`,
        headers: { "X-Bad": Redacted.make("s3cr3t\r\nInjected: yes") }
      }).pipe(Effect.provide(use({}).layer), Effect.flip)
      assert.strictEqual(error.reason, "upstream_protocol_error")
      assert.notInclude(error.message, "s3cr3t")
      assert.strictEqual(srv.seen.length, 0)
    })
  )
})

const openssl = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
})()

describe.skipIf(!openssl)("Upstream over TLS", () => {
  it.live("pins the address and still verifies the certificate against the URL's host", () =>
    Effect.gen(function* () {
      const dir = mkdtempSync(join(tmpdir(), "sb-tls-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
      execFileSync(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-nodes",
          "-days",
          "1",
          "-subj",
          "/CN=api.test",
          "-addext",
          "subjectAltName=DNS:api.test",
          "-keyout",
          join(dir, "key.pem"),
          "-out",
          join(dir, "cert.pem")
        ],
        { stdio: "ignore" }
      )
      const cert = readFileSync(join(dir, "cert.pem"))
      const port = yield* Effect.acquireRelease(
        Effect.promise(
          () =>
            new Promise<{ srv: Https.Server; port: number }>((resolve) => {
              const srv = Https.createServer({ key: readFileSync(join(dir, "key.pem")), cert }, (req, res) =>
                res.end(`tls ok ${req.headers.host}`)
              )
              srv.listen(0, "127.0.0.1", () => resolve({ srv, port: (srv.address() as Net.AddressInfo).port }))
            })
        ),
        ({ srv }) => Effect.promise(() => new Promise<void>((resolve) => srv.close(() => resolve())))
      ).pipe(Effect.map((s) => s.port))
      const rec = recordingConnect({ ca: cert })
      const table = { "api.test": [["127.0.0.1"]], "wrong.test": [["127.0.0.1"]] }
      const { layer } = use({ connect: rec.connect, ca: cert }, table)
      const ok = yield* call({ url: `https://api.test:${port}/` }).pipe(Effect.provide(layer))
      assert.strictEqual(yield* readAll(ok.body), `tls ok api.test:${port}`)
      const wrong = yield* call({ url: `https://wrong.test:${port}/` }).pipe(Effect.provide(layer), Effect.flip)
      assert.strictEqual(wrong.reason, "upstream_protocol_error")
      assert.include(wrong.message, "TLS with wrong.test")
      assert.deepStrictEqual(
        rec.attempts.map((a) => [a.address, a.hostname, a.tls]),
        [
          ["127.0.0.1", "api.test", true],
          ["127.0.0.1", "wrong.test", true]
        ]
      )
    })
  )
})
