/**
 * The PostgreSQL (and Amazon Redshift) probe at the wire-protocol level: an optional SSLRequest, the
 * StartupMessage, then the server's authentication request. Without credentials, an answer in the protocol
 * is enough (the server is there and speaks PostgreSQL). With credentials it completes the authentication the
 * server asks for (SCRAM-SHA-256 with the server's signature checked, MD5 or a cleartext password) and waits
 * for ReadyForQuery, so a wrong password is reported as `authentication_failed`, a missing database as
 * `not_found`, and a closed port as `unreachable`. It never runs a query, and ends with Terminate.
 */
import type { ProbeRequest } from "@switchboard/core/Probe"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import type { Resolver } from "@switchboard/core/Resolver"
import * as Crypto from "node:crypto"
import { isIP } from "node:net"
import { type ProbeEnv, secret, text } from "./internal/env.ts"
import { clean, fail, ProbeFailure } from "./internal/failure.ts"
import * as Target from "./internal/target.ts"
import * as Wire from "./internal/wire.ts"
import * as Scram from "./Scram.ts"

export const DEFAULT_PORT = 5432

/** libpq's sslmode, reduced: `disable`, `prefer` (TLS when offered), `require` (TLS, certificate not checked), `verify-full`. */
export type SslMode = "disable" | "prefer" | "require" | "verify-full"

export const sslMode = (value: unknown): SslMode => {
  if (value === undefined || value === false || value === "") return "disable"
  if (value === true) return "require"
  const v = (typeof value === "string" ? value : typeof value === "number" ? String(value) : "require")
    .trim()
    .toLowerCase()
  if (["false", "0", "no", "off", "disable"].includes(v)) return "disable"
  if (v === "prefer" || v === "allow") return "prefer"
  if (v === "verify-full" || v === "verify-ca" || v === "verify") return "verify-full"
  return "require"
}

const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4)
  b.writeInt32BE(n)
  return b
}

const cstring = (s: string): Buffer => Buffer.concat([Buffer.from(s, "utf8"), Buffer.from([0])])

const frontend = (type: string, body: Buffer): Buffer =>
  Buffer.concat([Buffer.from(type, "latin1"), int32(body.length + 4), body])

/** Protocol 3.0 StartupMessage with the given parameters. */
export const startupMessage = (params: Readonly<Record<string, string>>): Buffer => {
  const body = Buffer.concat([
    int32(196608),
    ...Object.entries(params).flatMap(([k, v]) => [cstring(k), cstring(v)]),
    Buffer.from([0])
  ])
  return Buffer.concat([int32(body.length + 4), body])
}

/** SSLRequest: length 8, code 80877103. */
export const sslRequest: Buffer = Buffer.concat([int32(8), int32(80877103)])

const terminate = frontend("X", Buffer.alloc(0))

/** MD5 password response: `md5` + md5hex(md5hex(password + user) + salt). */
export const md5Password = (user: string, password: string, salt: Buffer): string => {
  const inner = Crypto.createHash("md5")
    .update(password + user)
    .digest("hex")
  return `md5${Crypto.createHash("md5")
    .update(Buffer.concat([Buffer.from(inner), salt]))
    .digest("hex")}`
}

interface Backend {
  readonly type: string
  readonly body: Buffer
}

const MAX_MESSAGE = 1 << 20

const readMessage = (wire: Wire.Wire, first: boolean): Effect.Effect<Backend, ProbeFailure> =>
  Effect.gen(function* () {
    const head = yield* wire.read(5)
    const type = String.fromCharCode(head[0] ?? 0)
    const length = head.readInt32BE(1)
    if ((first && !"REvN".includes(type)) || length < 4 || length > MAX_MESSAGE) {
      return yield* fail("protocol_error", `${wire.where} does not speak the PostgreSQL protocol`)
    }
    return { type, body: yield* wire.read(length - 4) }
  })

/** The fields of an ErrorResponse or NoticeResponse, by their one-letter codes. */
export const errorFields = (body: Buffer): ReadonlyMap<string, string> => {
  const out = new Map<string, string>()
  let at = 0
  while (at < body.length && body[at] !== 0) {
    const code = String.fromCharCode(body[at] ?? 0)
    const end = body.indexOf(0, at + 1)
    if (end === -1) break
    out.set(code, body.subarray(at + 1, end).toString("utf8"))
    at = end + 1
  }
  return out
}

const cstrings = (body: Buffer): ReadonlyArray<string> => {
  const out: Array<string> = []
  let at = 0
  while (at < body.length && body[at] !== 0) {
    const end = body.indexOf(0, at)
    if (end === -1) break
    out.push(body.subarray(at, end).toString("utf8"))
    at = end + 1
  }
  return out
}

/** A server error as a failure: SQLSTATE class 28 is authentication, 3D000 a missing database. */
const serverError = (body: Buffer, where: string): ProbeFailure => {
  const fields = errorFields(body)
  const code = fields.get("C") ?? "?????"
  const message = clean(fields.get("M") ?? "no message")
  const detail = `${where}: ${message} (SQLSTATE ${code})`
  if (code.startsWith("28")) return new ProbeFailure({ reason: "authentication_failed", detail })
  if (code === "3D000") return new ProbeFailure({ reason: "not_found", detail })
  if (code === "57P03" || code.startsWith("08") || code === "53300") {
    return new ProbeFailure({ reason: "unreachable", detail })
  }
  return new ProbeFailure({ reason: "protocol_error", detail })
}

const methodNames: Readonly<Record<number, string>> = {
  2: "Kerberos V5",
  3: "a cleartext password",
  5: "MD5",
  7: "GSSAPI",
  9: "SSPI",
  10: "SASL"
}

/** After AuthenticationOk: ParameterStatus, BackendKeyData, notices, then ReadyForQuery. */
const untilReady = (wire: Wire.Wire): Effect.Effect<string | undefined, ProbeFailure> =>
  Effect.gen(function* () {
    let version: string | undefined
    for (;;) {
      const m = yield* readMessage(wire, false)
      if (m.type === "Z") return version
      if (m.type === "E") return yield* serverError(m.body, wire.where)
      if (m.type === "S") {
        const [name, value] = cstrings(m.body)
        if (name === "server_version" && value !== undefined) version = clean(value, 60)
      }
    }
  })

const product = (version: string | undefined) => (version === undefined ? "PostgreSQL" : `PostgreSQL ${version}`)

/** The SCRAM-SHA-256 exchange, from SASLInitialResponse to the checked SASLFinal. */
const scram = (wire: Wire.Wire, password: string) =>
  Effect.gen(function* () {
    const first = Scram.clientFirst("")
    const initial = Buffer.from(first.message, "utf8")
    yield* wire.write(frontend("p", Buffer.concat([cstring(Scram.MECHANISM), int32(initial.length), initial])))
    const cont = yield* readMessage(wire, false)
    if (cont.type === "E") return yield* serverError(cont.body, wire.where)
    if (cont.type !== "R" || cont.body.readInt32BE(0) !== 11) {
      return yield* fail("protocol_error", `${wire.where} broke off the SCRAM exchange`)
    }
    const server = Scram.parseServerFirst(cont.body.subarray(4).toString("utf8"), first.nonce)
    if (Result.isFailure(server)) return yield* fail("protocol_error", `${wire.where}: ${server.failure}`)
    const final = yield* Scram.clientFinal(password, first, server.success)
    yield* wire.write(frontend("p", Buffer.from(final.message, "utf8")))
    const last = yield* readMessage(wire, false)
    if (last.type === "E") return yield* serverError(last.body, wire.where)
    if (last.type !== "R" || last.body.readInt32BE(0) !== 12) {
      return yield* fail("protocol_error", `${wire.where} broke off the SCRAM exchange`)
    }
    const verified = Scram.verifyServerFinal(last.body.subarray(4).toString("utf8"), final.serverSignature)
    if (Result.isFailure(verified)) return yield* fail("protocol_error", `${wire.where}: ${verified.failure}`)
  })

/** Probe a PostgreSQL or Redshift server: config `host`, `port`, `database`, `ssl`; credentials `username`, `password`. */
export const probe = (
  request: ProbeRequest,
  env: ProbeEnv
): Effect.Effect<string, ProbeFailure, Scope.Scope | Resolver> =>
  Effect.gen(function* () {
    const target: Target.HostPort = {
      host: yield* Target.host(request.config.host),
      port: yield* Target.port(request.config.port, DEFAULT_PORT)
    }
    const database = text(request, "database")
    const user = secret(request, "username")
    const password = secret(request, "password")
    const withCredentials = user !== undefined || password !== undefined
    const ssl = sslMode(request.config.ssl)
    const endpoint = yield* Target.pin(target, env.allowPrivateNetwork)

    let wire = yield* Wire.open(env.connect, endpoint, false)
    let tls = false
    if (ssl !== "disable") {
      yield* wire.write(sslRequest)
      const answer = (yield* wire.read(1))[0]
      if (answer === 0x53) {
        wire = yield* wire.startTls({
          ...(isIP(endpoint.hostname) === 0 ? { servername: endpoint.hostname } : {}),
          host: endpoint.hostname,
          rejectUnauthorized: ssl === "verify-full",
          ...(env.ca === undefined ? {} : { ca: env.ca })
        })
        tls = true
      } else if (answer !== 0x4e) {
        return yield* fail("protocol_error", `${wire.where} does not speak the PostgreSQL protocol`)
      } else if (ssl !== "prefer") {
        return yield* fail(
          "protocol_error",
          `${wire.where} does not accept TLS, which the connection's ssl setting requires`
        )
      }
    }
    yield* wire.write(
      startupMessage({
        user: user ?? "switchboard",
        ...(database === undefined ? {} : { database }),
        application_name: "switchboard-probe"
      })
    )
    const over = tls ? " over TLS" : ""

    let method = "no password"
    for (let first = true; ; first = false) {
      const m = yield* readMessage(wire, first)
      if (m.type === "N" || m.type === "v") continue
      if (m.type === "E") {
        const error = serverError(m.body, wire.where)
        // Without credentials an authentication refusal still proves a PostgreSQL server answers.
        if (!withCredentials && error.reason === "authentication_failed") {
          return `${error.detail}; PostgreSQL answered${over} (no credentials to try)`
        }
        return yield* error
      }
      if (m.type !== "R" || m.body.length < 4) {
        return yield* fail("protocol_error", `${wire.where} sent an unexpected message during authentication`)
      }
      const code = m.body.readInt32BE(0)
      if (code === 0) {
        const version = yield* untilReady(wire)
        yield* wire.write(terminate)
        return withCredentials
          ? `${product(version)} accepted the credentials${over} (${method})`
          : `${product(version)} accepts connections${over} without a password`
      }
      const asked = methodNames[code] ?? `authentication method ${code}`
      if (!withCredentials) {
        const mechanisms = code === 10 ? ` (${cstrings(m.body.subarray(4)).join(", ")})` : ""
        return `PostgreSQL answered${over} and asks for ${asked}${mechanisms} authentication (no credentials to try)`
      }
      if (password === undefined && (code === 3 || code === 5 || code === 10)) {
        return yield* fail("authentication_failed", `${wire.where} asks for a password and the credential has none`)
      }
      const pw = password ?? ""
      if (code === 3) {
        yield* wire.write(frontend("p", cstring(pw)))
        method = "password"
      } else if (code === 5) {
        yield* wire.write(frontend("p", cstring(md5Password(user ?? "switchboard", pw, m.body.subarray(4, 8)))))
        method = "MD5"
      } else if (code === 10) {
        const mechanisms = cstrings(m.body.subarray(4))
        if (!mechanisms.includes(Scram.MECHANISM)) {
          return yield* fail(
            "protocol_error",
            `${wire.where} offers SASL mechanisms ${mechanisms.join(", ")}, none of which the probe speaks`
          )
        }
        yield* scram(wire, pw)
        method = Scram.MECHANISM
      } else {
        return yield* fail("protocol_error", `${wire.where} asks for ${asked}, which the probe does not speak`)
      }
    }
  })
