/**
 * The full proxy stack for end-to-end tests (in-memory store, Switchboard, Proxy with its resilience, the real
 * SSRF-guarded client) and a recording upstream on 127.0.0.1 that keeps exactly what it received.
 */
import * as Memory from "@switchboard/adapters/memory"
import { Resolver as HttpResolver, Upstream as HttpUpstream } from "@switchboard/adapters/http"
import type * as Principal from "@switchboard/core/Principal"
import * as Proxy from "@switchboard/core/Proxy"
import * as Resilience from "@switchboard/core/Resilience"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createHash } from "node:crypto"
import * as Http from "node:http"
import * as Net from "node:net"

/** What the upstream saw of one request, byte for byte. */
export interface Seen {
  readonly method: string
  /** The request target as sent: path and raw query. */
  readonly url: string
  readonly path: string
  readonly query: ReadonlyArray<readonly [string, string]>
  /** Header name/value pairs in the order and case they arrived. */
  readonly headers: ReadonlyArray<readonly [string, string]>
  readonly bytes: number
  readonly sha256: string
}

export interface RecordingServer {
  readonly port: number
  readonly origin: string
  readonly seen: Array<Seen>
  readonly hits: (path: string) => number
}

const pairs = (raw: ReadonlyArray<string>): Array<readonly [string, string]> => {
  const out: Array<readonly [string, string]> = []
  for (let i = 0; i < raw.length; i += 2) out.push([raw[i] ?? "", raw[i + 1] ?? ""])
  return out
}

/** The value(s) of a header as the upstream received it (case-insensitive name). */
export const received = (seen: Seen | undefined, name: string): ReadonlyArray<string> =>
  (seen?.headers ?? []).filter(([k]) => k.toLowerCase() === name.toLowerCase()).map(([, v]) => v)

/**
 * The upstream. `/pipe` streams the request back as the response; `/hang` never answers; `/redirect`
 * redirects to the metadata service; `/flaky/<id>`
 * answers 503 twice, then 200; `/status/<code>` answers that code; anything else answers 200 with a fixed
 * body (never an echo: what arrived is in `seen`). Every answer carries a cookie and hop-by-hop headers.
 */
export const recordingServer = Effect.acquireRelease(
  Effect.promise(
    () =>
      new Promise<{ readonly srv: Http.Server; readonly info: RecordingServer }>((resolve) => {
        const seen: Array<Seen> = []
        const counts = new Map<string, number>()
        const srv = Http.createServer((req, res) => {
          const url = new URL(req.url ?? "/", "http://upstream.invalid")
          const path = url.pathname
          counts.set(path, (counts.get(path) ?? 0) + 1)
          const record = (bytes: number, sha256: string) =>
            seen.push({
              method: req.method ?? "",
              url: req.url ?? "",
              path,
              query: [...url.searchParams],
              headers: pairs(req.rawHeaders),
              bytes,
              sha256
            })
          res.setHeader("Set-Cookie", ["sid=upstream-session; HttpOnly", "theme=dark"])
          res.setHeader("Connection", "close, X-Upstream-Hop")
          res.setHeader("X-Upstream-Hop", "internal-route")
          res.setHeader("Keep-Alive", "timeout=5")
          res.setHeader("Proxy-Authenticate", 'Basic realm="upstream"')
          res.setHeader("X-Kept", "yes")
          if (path.endsWith("/pipe")) {
            record(-1, "")
            req.pipe(res)
            return
          }
          if (path.endsWith("/redirect")) {
            record(-1, "")
            res.writeHead(302, { location: "http://169.254.169.254/latest/meta-data/iam/security-credentials/" }).end()
            return
          }
          if (path.endsWith("/hang")) {
            record(-1, "")
            return
          }
          const hash = createHash("sha256")
          let bytes = 0
          req.on("data", (chunk: Buffer) => {
            bytes += chunk.length
            hash.update(chunk)
          })
          req.on("end", () => {
            record(bytes, hash.digest("hex"))
            const flaky = /\/flaky\//u.test(path) && (counts.get(path) ?? 0) <= 2
            const status = /\/status\/(\d{3})$/u.exec(path)
            res.statusCode = flaky ? 503 : status !== null ? Number(status[1]) : 200
            res.setHeader("content-type", "text/plain")
            res.end("upstream says ok")
          })
        })
        srv.listen(0, "127.0.0.1", () => {
          const port = (srv.address() as Net.AddressInfo).port
          resolve({
            srv,
            info: { port, origin: `http://127.0.0.1:${port}`, seen, hits: (p) => counts.get(p) ?? 0 }
          })
        })
      })
  ),
  ({ srv }) =>
    Effect.promise(
      () =>
        new Promise<void>((resolve) => {
          srv.closeAllConnections()
          srv.close(() => resolve())
        })
    )
).pipe(Effect.map(({ info }) => info))

export const alice: Principal.Principal = { org: "acme", workspace: "eng", user: "alice", role: "admin" }

/** Every connection attempt the upstream client makes, by address and port. */
export const attempts: Array<string> = []

const connect: HttpUpstream.Connect = (o) => {
  attempts.push(`${o.address}:${o.port}`)
  if (o.address !== "127.0.0.1" && o.address !== "::1") {
    throw Object.assign(new Error(`test confinement: refused to connect to ${o.address}`), { code: "ECONFINED" })
  }
  return HttpUpstream.makeConnect()(o)
}

/**
 * The stack: the real guarded client (connections confined to loopback and counted), short retry backoff.
 * The stores stay visible for direct edits.
 */
export const stack = Proxy.layerNoDeps.pipe(
  Layer.provide(Resilience.layerWith({ backoff: "10 millis" })),
  Layer.provide(HttpUpstream.layerWith({ connect }).pipe(Layer.provide(HttpResolver.layer))),
  Layer.provideMerge(Switchboard.layer),
  Layer.provideMerge(Memory.layer)
)

/** A port nothing listens on (bound, then released). */
export const freePort = Effect.promise(
  () =>
    new Promise<number>((resolve) => {
      const srv = Net.createServer()
      srv.listen(0, "127.0.0.1", () => {
        const port = (srv.address() as Net.AddressInfo).port
        srv.close(() => resolve(port))
      })
    })
)
