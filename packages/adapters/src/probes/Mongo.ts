/**
 * The MongoDB probe: a `hello` command over OP_MSG (MongoDB 3.6 and later) to the first host of the config
 * (`host`/`port`, or a `mongodb://` or `mongodb+srv://` connection string, whose credentials are never used or
 * shown), answered with `ok: 1`, the wire version and the member's role. TLS when the config or the connection
 * string asks for it (`+srv` implies it).
 */
import type { ProbeRequest } from "@switchboard/core/Probe"
import type { Resolver } from "@switchboard/core/Resolver"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Bson from "./internal/bson.ts"
import { flag, type ProbeEnv, text } from "./internal/env.ts"
import { clean, fail, type ProbeFailure } from "./internal/failure.ts"
import * as Target from "./internal/target.ts"
import * as Wire from "./internal/wire.ts"

export const DEFAULT_PORT = 27017

const OP_MSG = 2013
const OP_REPLY = 1

/** The OP_MSG carrying `{hello: 1, $db: "admin"}`. */
export const helloMessage = (requestId: number): Buffer => {
  const doc = Bson.encode([
    ["hello", 1],
    ["$db", "admin"]
  ])
  const header = Buffer.alloc(21)
  header.writeInt32LE(16 + 4 + 1 + doc.length, 0)
  header.writeInt32LE(requestId, 4)
  header.writeInt32LE(0, 8)
  header.writeInt32LE(OP_MSG, 12)
  header.writeUInt32LE(0, 16)
  header[20] = 0
  return Buffer.concat([header, doc])
}

interface Where {
  readonly target: Target.HostPort
  readonly tls: boolean
}

/** Where to connect: the config's host and port, or the first host of its connection string. */
const where = (request: ProbeRequest, env: ProbeEnv): Effect.Effect<Where, ProbeFailure> =>
  Effect.gen(function* () {
    const tlsFlag = flag(request, "tls") ?? flag(request, "ssl")
    const uri = text(request, "connectionString")
    if (text(request, "host") !== undefined || uri === undefined) {
      return {
        target: {
          host: yield* Target.host(request.config.host),
          port: yield* Target.port(request.config.port, DEFAULT_PORT)
        },
        tls: tlsFlag ?? false
      }
    }
    const match = /^(mongodb(?:\+srv)?):\/\/(?:[^@/]*@)?([^/?]+)(?:\/[^?]*)?(?:\?(.*))?$/u.exec(uri.trim())
    if (match === null)
      return yield* fail("protocol_error", "the connection string is not a mongodb:// or mongodb+srv:// URI")
    const [, scheme, hosts = "", query = ""] = match
    const params = new URLSearchParams(query)
    const tlsParam = params.get("tls") ?? params.get("ssl")
    const srv = scheme === "mongodb+srv"
    const tls = tlsFlag ?? (tlsParam === null ? srv : tlsParam === "true")
    const firstHost = hosts.split(",")[0] ?? ""
    if (srv) {
      const name = yield* Target.host(firstHost, "connectionString")
      const records = yield* env.resolveSrv(`_mongodb._tcp.${name}`)
      const record = records[0]
      if (record === undefined) return yield* fail("unreachable", `no SRV record for _mongodb._tcp.${name}`)
      // The SRV answer must stay within the queried domain (the MongoDB spec's rule), else it could point anywhere.
      const parent = name.split(".").slice(1).join(".")
      if (!record.name.toLowerCase().endsWith(`.${parent.toLowerCase()}`)) {
        return yield* fail("refused", `the SRV record of ${name} points outside its domain`)
      }
      return { target: { host: yield* Target.host(record.name), port: record.port }, tls }
    }
    return { target: yield* Target.parseHostPort(firstHost, DEFAULT_PORT, "connectionString"), tls }
  })

/** Probe a MongoDB server: config `host`, `port`, `tls`, or `connectionString`. */
export const probe = (
  request: ProbeRequest,
  env: ProbeEnv
): Effect.Effect<string, ProbeFailure, Scope.Scope | Resolver> =>
  Effect.gen(function* () {
    const { target, tls } = yield* where(request, env)
    const endpoint = yield* Target.pin(target, env.allowPrivateNetwork)
    const wire = yield* Wire.open(env.connect, endpoint, tls)
    const requestId = 0x5b0a
    yield* wire.write(helloMessage(requestId))
    const head = yield* wire.read(16)
    const length = head.readInt32LE(0)
    const responseTo = head.readInt32LE(8)
    const opCode = head.readInt32LE(12)
    if (
      length < 21 ||
      length > 16 * 1024 * 1024 ||
      responseTo !== requestId ||
      (opCode !== OP_MSG && opCode !== OP_REPLY)
    ) {
      return yield* fail("protocol_error", `${wire.where} does not speak the MongoDB protocol`)
    }
    const rest = yield* wire.read(length - 16)
    if (opCode === OP_REPLY) return `MongoDB server answered with a legacy OP_REPLY (a server older than 3.6)`
    if (rest[4] !== 0) return yield* fail("protocol_error", `${wire.where} sent an OP_MSG without a body section`)
    const doc = Bson.decodeTop(rest.subarray(5, 5 + rest.readInt32LE(5)))
    if (doc === undefined) return yield* fail("protocol_error", `${wire.where} sent a malformed BSON reply`)
    if (doc.get("ok") !== 1) {
      const message = clean(String(doc.get("errmsg") ?? "no message"))
      const code = doc.get("code")
      return yield* fail(
        code === 13 || code === 18 ? "authentication_failed" : "protocol_error",
        `${wire.where}: hello failed: ${message}`
      )
    }
    const role =
      doc.get("msg") === "isdbgrid"
        ? "mongos"
        : doc.get("isWritablePrimary") === true || doc.get("ismaster") === true
          ? "primary"
          : doc.get("secondary") === true
            ? "secondary"
            : "member"
    const set = typeof doc.get("setName") === "string" ? `, replica set ${clean(String(doc.get("setName")), 60)}` : ""
    const wireVersion = doc.get("maxWireVersion")
    return `MongoDB answered hello${tls ? " over TLS" : ""} (${role}${set}, wire version ${String(wireVersion ?? "?")})`
  })
