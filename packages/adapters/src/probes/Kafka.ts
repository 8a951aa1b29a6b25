/**
 * The Kafka probe: an ApiVersions request (version 0, which every broker answers, if only with
 * UNSUPPORTED_VERSION in the v0 layout) to the first bootstrap server that accepts a connection. A well-formed
 * answer with our correlation id proves a Kafka broker listens; TLS when the config asks for it.
 */
import type { ProbeRequest } from "@switchboard/core/Probe"
import type { Resolver } from "@switchboard/core/Resolver"
import * as Effect from "effect/Effect"
import { flag, type ProbeEnv, text } from "./internal/env.ts"
import { fail, ProbeFailure } from "./internal/failure.ts"
import * as Target from "./internal/target.ts"
import * as Wire from "./internal/wire.ts"

export const DEFAULT_PORT = 9092

const API_VERSIONS = 18
const UNSUPPORTED_VERSION = 35

/** ApiVersions v0: size, api key 18, version 0, correlation id, client id. */
export const apiVersionsRequest = (correlationId: number, clientId = "switchboard-probe"): Buffer => {
  const client = Buffer.from(clientId, "utf8")
  const body = Buffer.alloc(2 + 2 + 4 + 2 + client.length)
  body.writeInt16BE(API_VERSIONS, 0)
  body.writeInt16BE(0, 2)
  body.writeInt32BE(correlationId, 4)
  body.writeInt16BE(client.length, 8)
  client.copy(body, 10)
  const size = Buffer.alloc(4)
  size.writeInt32BE(body.length)
  return Buffer.concat([size, body])
}

const one = (target: Target.HostPort, tls: boolean, env: ProbeEnv) =>
  Effect.scoped(
    Effect.gen(function* () {
      const endpoint = yield* Target.pin(target, env.allowPrivateNetwork)
      const wire = yield* Wire.open(env.connect, endpoint, tls)
      const correlationId = 0x5b0a1
      yield* wire.write(apiVersionsRequest(correlationId))
      const size = (yield* wire.read(4)).readInt32BE(0)
      if (size < 10 || size > 1024 * 1024) {
        return yield* fail("protocol_error", `${wire.where} does not speak the Kafka protocol`)
      }
      const body = yield* wire.read(size)
      const errorCode = body.readInt16BE(4)
      if (body.readInt32BE(0) !== correlationId || (errorCode !== 0 && errorCode !== UNSUPPORTED_VERSION)) {
        return yield* fail(
          "protocol_error",
          body.readInt32BE(0) !== correlationId
            ? `${wire.where} does not speak the Kafka protocol`
            : `${wire.where} answered ApiVersions with error code ${errorCode}`
        )
      }
      const count = body.readInt32BE(6)
      return errorCode === 0
        ? `Kafka broker ${wire.where} answered ApiVersions${tls ? " over TLS" : ""} (${count} APIs)`
        : `Kafka broker ${wire.where} answered ApiVersions${tls ? " over TLS" : ""} (it needs a newer request version)`
    })
  )

/** Probe Kafka: config `bootstrapServers` (comma-separated `host:port`), `ssl`. The first broker that answers wins. */
export const probe = (request: ProbeRequest, env: ProbeEnv): Effect.Effect<string, ProbeFailure, Resolver> =>
  Effect.gen(function* () {
    const servers = (text(request, "bootstrapServers") ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "")
    if (servers.length === 0) return yield* fail("protocol_error", 'config field "bootstrapServers" is missing')
    const tls = flag(request, "ssl") ?? flag(request, "tls") ?? false
    let last: ProbeFailure | undefined
    for (const server of servers.slice(0, 10)) {
      const target = yield* Target.parseHostPort(server, DEFAULT_PORT, "bootstrapServers")
      const result = yield* Effect.result(one(target, tls, env))
      if (result._tag === "Success") return result.success
      last = result.failure
      // A refused destination is a rule, not a broker that is down: the other servers may not be tried either.
      if (last.reason === "refused") return yield* last
    }
    return yield* last ?? new ProbeFailure({ reason: "unreachable", detail: "no bootstrap server answered" })
  })
