/**
 * One TCP (or TLS) connection of a protocol probe as reads of exact sizes and lines: the socket goes to the
 * address the SSRF guard checked (through the same `Connect` hook as the HTTP client, so tests can count and
 * confine attempts), its listeners are attached in the same tick it is created (a failed connect can never
 * surface as an unhandled `error` event), and the scope closes it.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Net from "node:net"
import * as Tls from "node:tls"
import type { Connect } from "../../http/Upstream.ts"
import { fromSocket, ProbeFailure } from "./failure.ts"

/** Where a probe connects: always a checked IP address; `hostname` is for messages and TLS. */
export interface Endpoint {
  readonly address: string
  readonly family: 4 | 6
  readonly port: number
  readonly hostname: string
}

export interface Wire {
  /** `host (address:port)`, for messages. */
  readonly where: string
  /** Exactly `n` bytes, waiting for them; fails when the peer closes first. */
  readonly read: (n: number) => Effect.Effect<Buffer, ProbeFailure>
  /** The next line (without CR LF), at most `max` bytes. */
  readonly readLine: (max: number) => Effect.Effect<string, ProbeFailure>
  readonly write: (data: Uint8Array) => Effect.Effect<void, ProbeFailure>
  /** Continue over TLS on this connection (PostgreSQL's SSLRequest). */
  readonly startTls: (options: Tls.ConnectionOptions) => Effect.Effect<Wire, ProbeFailure, Scope.Scope>
}

/** `host (address:port)`, or `address:port` when the host is the address. */
export const describe = (endpoint: Endpoint): string => {
  const at = endpoint.family === 6 ? `[${endpoint.address}]:${endpoint.port}` : `${endpoint.address}:${endpoint.port}`
  return endpoint.hostname === endpoint.address ? at : `${endpoint.hostname} (${at})`
}

const noop = () => {}

const wrap = (socket: Net.Socket, where: string, readyEvent: "connect" | "secureConnect") => {
  let buffer: Buffer = Buffer.alloc(0)
  let ready = false
  let closed: ProbeFailure | undefined
  let wake: (() => void) | undefined
  const notify = () => {
    const w = wake
    wake = undefined
    w?.()
  }
  const onData = (chunk: Buffer) => {
    buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk])
    notify()
  }
  const onClose = () => {
    closed ??= new ProbeFailure({ reason: "protocol_error", detail: `${where} closed the connection` })
    notify()
  }
  const onError = (cause: unknown) => {
    closed ??= fromSocket(cause, where)
    notify()
  }
  const onReady = () => {
    ready = true
    notify()
  }
  socket.on("data", onData)
  socket.on("end", onClose)
  socket.on("close", onClose)
  socket.on("error", onError)
  socket.once(readyEvent, onReady)

  const until = <A>(take: () => A | ProbeFailure | undefined): Effect.Effect<A, ProbeFailure> =>
    Effect.callback<A, ProbeFailure>((resume) => {
      const attempt = () => {
        const value = take()
        if (value instanceof ProbeFailure) resume(Effect.fail(value))
        else if (value !== undefined) resume(Effect.succeed(value))
        else if (closed !== undefined) resume(Effect.fail(closed))
        else wake = attempt
      }
      attempt()
      return Effect.sync(() => {
        wake = undefined
      })
    })

  const connected = until(() => (ready ? true : undefined))

  const read = (n: number) =>
    until(() => {
      if (buffer.length < n) return undefined
      const out = buffer.subarray(0, n)
      buffer = buffer.subarray(n)
      return out
    })

  const readLine = (max: number) =>
    until((): string | ProbeFailure | undefined => {
      const end = buffer.indexOf(0x0a)
      if (end === -1 || end > max) {
        return buffer.length > max
          ? new ProbeFailure({ reason: "protocol_error", detail: `${where} sent a line longer than ${max} bytes` })
          : undefined
      }
      const line = buffer.subarray(0, end).toString("latin1").replace(/\r$/u, "")
      buffer = buffer.subarray(end + 1)
      return line
    })

  const write = (data: Uint8Array) =>
    Effect.callback<void, ProbeFailure>((resume) => {
      socket.write(data, (error) => resume(error ? Effect.fail(fromSocket(error, where)) : Effect.void))
    })

  const startTls = (options: Tls.ConnectionOptions): Effect.Effect<Wire, ProbeFailure, Scope.Scope> =>
    Effect.gen(function* () {
      // Bytes that arrived before the handshake could be injected by anyone on the path: refuse them.
      if (buffer.length > 0) {
        return yield* new ProbeFailure({
          reason: "protocol_error",
          detail: `${where} sent unexpected data before the TLS handshake`
        })
      }
      socket.off("data", onData)
      socket.off("end", onClose)
      socket.off("close", onClose)
      socket.off("error", onError)
      socket.on("error", noop)
      const secured = yield* Effect.acquireRelease(
        Effect.try({
          try: () => wrap(Tls.connect({ ...options, socket }), where, "secureConnect"),
          catch: (cause) => fromSocket(cause, where)
        }),
        (w) => Effect.sync(() => w.socket.destroy())
      )
      yield* secured.connected
      return secured.wire
    })

  const wire: Wire = { where, read, readLine, write, startTls }
  return { wire, socket, connected }
}

/** Connect to a checked endpoint (TLS when asked) and wait until the connection is up. */
export const open = (
  connect: Connect,
  endpoint: Endpoint,
  tls: boolean
): Effect.Effect<Wire, ProbeFailure, Scope.Scope> => {
  const where = describe(endpoint)
  return Effect.gen(function* () {
    const opened = yield* Effect.acquireRelease(
      Effect.try({
        try: () => wrap(connect({ ...endpoint, tls }), where, tls ? "secureConnect" : "connect"),
        catch: (cause) => fromSocket(cause, where)
      }),
      (w) => Effect.sync(() => w.socket.destroy())
    )
    yield* opened.connected
    return opened.wire
  })
}
