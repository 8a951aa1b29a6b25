/**
 * Test helpers for the HTTP adapter: loopback servers that record what they received, and connect hooks that
 * count every connection attempt and confine them to loopback (a guard regression then fails a test instead of
 * reaching the network).
 */
import { createHash } from "node:crypto"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Effect from "effect/Effect"
import * as Upstream from "../../src/http/Upstream.ts"

/** What a server saw of one request. */
export interface Seen {
  readonly method: string
  readonly url: string
  readonly rawHeaders: ReadonlyArray<string>
  readonly headers: Http.IncomingHttpHeaders
  readonly bytes: number
  readonly sha256: string
}

export interface TestServer {
  readonly port: number
  readonly origin: string
  readonly seen: Array<Seen>
  /** TCP connections accepted. */
  readonly connections: () => number
}

export type Handler = (req: Http.IncomingMessage, res: Http.ServerResponse, body: Buffer) => void

/** A handler that answers with what it saw, as JSON. */
export const echo: Handler = (req, res, body) => {
  res.setHeader("content-type", "application/json")
  res.end(
    JSON.stringify({
      method: req.method,
      url: req.url,
      rawHeaders: req.rawHeaders,
      bytes: body.length,
      sha256: createHash("sha256").update(body).digest("hex")
    })
  )
}

/**
 * A server on 127.0.0.1 for the test's scope. `raw` handlers get the request unread (for streaming and
 * stalling); others get the whole body and the request is recorded.
 */
export const server = (handler: Handler, options: { readonly raw?: boolean } = {}) =>
  Effect.acquireRelease(
    Effect.promise(
      () =>
        new Promise<{ readonly srv: Http.Server; readonly info: TestServer }>((resolve) => {
          const seen: Array<Seen> = []
          let connections = 0
          const srv = Http.createServer((req, res) => {
            if (options.raw === true) {
              seen.push({
                method: req.method ?? "",
                url: req.url ?? "",
                rawHeaders: req.rawHeaders,
                headers: req.headers,
                bytes: -1,
                sha256: ""
              })
              handler(req, res, Buffer.alloc(0))
              return
            }
            const chunks: Array<Buffer> = []
            req.on("data", (c: Buffer) => chunks.push(c))
            req.on("end", () => {
              const body = Buffer.concat(chunks)
              seen.push({
                method: req.method ?? "",
                url: req.url ?? "",
                rawHeaders: req.rawHeaders,
                headers: req.headers,
                bytes: body.length,
                sha256: createHash("sha256").update(body).digest("hex")
              })
              handler(req, res, body)
            })
          })
          srv.on("connection", () => connections++)
          srv.listen(0, "127.0.0.1", () => {
            const port = (srv.address() as Net.AddressInfo).port
            resolve({ srv, info: { port, origin: `http://127.0.0.1:${port}`, seen, connections: () => connections } })
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

/** A TCP server on 127.0.0.1 that accepts and never says anything (a TLS handshake then never completes). */
export const silentServer = Effect.acquireRelease(
  Effect.promise(
    () =>
      new Promise<{ readonly srv: Net.Server; readonly sockets: Set<Net.Socket>; readonly port: number }>((resolve) => {
        const sockets = new Set<Net.Socket>()
        const srv = Net.createServer((s) => {
          sockets.add(s)
          s.on("error", () => {})
        })
        srv.listen(0, "127.0.0.1", () => resolve({ srv, sockets, port: (srv.address() as Net.AddressInfo).port }))
      })
  ),
  ({ srv, sockets }) =>
    Effect.promise(
      () =>
        new Promise<void>((resolve) => {
          for (const s of sockets) s.destroy()
          srv.close(() => resolve())
        })
    )
).pipe(Effect.map(({ port }) => port))

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

const loopback = (address: string) => address === "127.0.0.1" || address === "::1"

/**
 * A connect hook that records every attempt. Attempts to `simulated` addresses (stand-ins for public hosts)
 * go to the given loopback port; other non-loopback attempts are refused without touching the network,
 * unless `passThrough` is set (inside a loopback-only network namespace, where they fail on their own).
 */
export const recordingConnect = (
  options: {
    readonly simulated?: Readonly<Record<string, number>>
    readonly passThrough?: boolean
    readonly ca?: Buffer
  } = {}
) => {
  const attempts: Array<Upstream.ConnectOptions> = []
  const real = Upstream.makeConnect(options.ca)
  const connect: Upstream.Connect = (o) => {
    attempts.push(o)
    const stand = options.simulated?.[o.address]
    if (stand !== undefined) return Net.connect({ host: "127.0.0.1", port: stand })
    if (!loopback(o.address) && options.passThrough !== true) {
      throw Object.assign(new Error(`test confinement: refused to connect to ${o.address}`), { code: "ECONFINED" })
    }
    return real(o)
  }
  return { attempts, connect }
}

/** Collect a byte stream into one buffer (tests only). */
export const text = (chunks: ReadonlyArray<Uint8Array>) => Buffer.concat(chunks.map((c) => Buffer.from(c))).toString()
