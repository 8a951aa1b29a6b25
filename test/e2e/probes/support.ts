/**
 * End-to-end support for connection tests: a daemon in this process as `Daemon.run` wires it (memory store,
 * `Layers.withCalls` with the real probes, SSRF guard and guarded HTTP client) on its own data directory and
 * socket, raw HTTP requests over the socket (what curl --unix-socket does) that keep every response and log line
 * for the masking scan, and small servers on 127.0.0.1 (an SSH banner, HTTP).
 */
import { Daemon } from "@switchboard/daemon"
import * as Client from "@switchboard/daemon/client"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"

export interface Raw {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly text: string
  readonly json: any
}

/** A fresh private temp directory. */
export const tempDir = (prefix = "sbp-"): string => Fs.mkdtempSync(Path.join(Os.tmpdir(), prefix))

/** One request over a Unix socket. */
export const rawRequest = (socket: string, method: string, path: string, body?: unknown) =>
  new Promise<Raw>((resolve, reject) => {
    const text = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body)
    const req = Http.request(
      {
        socketPath: socket,
        method,
        path,
        agent: false,
        headers: { host: "switchboard", ...(text === undefined ? {} : { "content-type": "application/json" }) }
      },
      (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (c: Buffer) => chunks.push(c))
        res.on("end", () => {
          const out = Buffer.concat(chunks).toString("utf8")
          let json: unknown
          try {
            json = out === "" ? undefined : JSON.parse(out)
          } catch {
            json = undefined
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text: out, json })
        })
      }
    )
    req.on("error", reject)
    req.end(text)
  })

export interface InProcessDaemon {
  readonly home: string
  readonly socket: string
  readonly request: (method: string, path: string, body?: unknown) => Effect.Effect<Raw>
  /** Every response (headers and body) and every log line so far. */
  readonly texts: () => ReadonlyArray<string>
}

/** A daemon in this process (memory store unless told otherwise) until the scope closes. */
export const daemon = (
  root: string,
  name: string,
  store: "memory" | "sqlite" = "memory"
): Effect.Effect<InProcessDaemon, never, Scope.Scope> =>
  Effect.gen(function* () {
    const home = Path.join(root, name)
    const socket = Path.join(home, "sb.sock")
    Fs.mkdirSync(home, { recursive: true, mode: 0o700 })
    const logs: Array<string> = []
    yield* Effect.forkScoped(
      Daemon.run({ home, store, env: { SWITCHBOARD_SOCKET: socket }, logRequests: false }).pipe(
        Effect.provide(Logger.layer([Daemon.jsonLogger((line) => logs.push(line))]))
      )
    )
    yield* Client.health(socket).pipe(
      Effect.retry({ schedule: Schedule.spaced("20 millis"), times: 250 }),
      Effect.orDie
    )
    const seen: Array<Raw> = []
    const request = (method: string, path: string, body?: unknown) =>
      Effect.promise(() => rawRequest(socket, method, path, body)).pipe(
        Effect.tap((r) => Effect.sync(() => seen.push(r)))
      )
    const texts = () => [...seen.flatMap((r) => [JSON.stringify(r.headers), r.text]), ...logs]
    return { home, socket, request, texts }
  })

const closing = (srv: Net.Server) =>
  Effect.promise(
    () =>
      new Promise<void>((resolve) => {
        if (srv instanceof Http.Server) srv.closeAllConnections()
        srv.close(() => resolve())
      })
  )

const listen = (make: () => Net.Server): Effect.Effect<{ readonly port: number }, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(
      () =>
        new Promise<Net.Server>((resolve) => {
          const srv = make()
          srv.listen(0, "127.0.0.1", () => resolve(srv))
        })
    ),
    closing
  ).pipe(Effect.map((srv) => ({ port: (srv.address() as Net.AddressInfo).port })))

/** An SSH server's identification line on 127.0.0.1. */
export const sshServer = listen(() =>
  Net.createServer((socket) => {
    socket.on("error", () => {})
    socket.end("SSH-2.0-OpenSSH_9.6p1 test\r\n")
  })
)

/** An HTTP server on 127.0.0.1 answering `status(path, headers)`. */
export const httpServer = (status: (path: string, headers: Http.IncomingHttpHeaders) => number) =>
  listen(() => Http.createServer((req, res) => res.writeHead(status(req.url ?? "/", req.headers)).end()))

/** A port nothing listens on. */
export const closedPort = Effect.promise(
  () =>
    new Promise<number>((resolve) => {
      const srv = Net.createServer()
      srv.listen(0, "127.0.0.1", () => {
        const port = (srv.address() as Net.AddressInfo).port
        srv.close(() => resolve(port))
      })
    })
)
