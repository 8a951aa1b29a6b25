/**
 * The MySQL (and MariaDB) probe: connect and read the server's initial handshake packet, which the server
 * sends first. A protocol-10 greeting names the server version and the default auth plugin; an error packet
 * instead (host not allowed, too many connections) is reported by its code. Nothing is sent.
 */
import type { ProbeRequest } from "@switchboard/core/Probe"
import type { Resolver } from "@switchboard/core/Resolver"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { ProbeEnv } from "./internal/env.ts"
import { clean, fail, type ProbeFailure } from "./internal/failure.ts"
import * as Target from "./internal/target.ts"

export const DEFAULT_PORT = 3306

export interface Greeting {
  readonly protocol: number
  readonly version: string
  readonly authPlugin: string | undefined
}

/** Parse the payload of a handshake packet (protocol 10; 9 is accepted with what it says). */
export const parseGreeting = (payload: Buffer): Greeting | undefined => {
  const protocol = payload[0]
  if (protocol !== 10 && protocol !== 9) return undefined
  const versionEnd = payload.indexOf(0, 1)
  if (versionEnd === -1) return undefined
  const version = payload.subarray(1, versionEnd).toString("latin1")
  if (protocol === 9) return { protocol, version, authPlugin: undefined }
  // connection id (4), auth data part 1 (8), filler (1), capabilities low (2), charset (1), status (2),
  // capabilities high (2), auth data length (1), reserved (10), auth data part 2, plugin name.
  let at = versionEnd + 1 + 4 + 8 + 1
  const capsLow = payload.readUInt16LE(at)
  at += 2 + 1 + 2
  const capsHigh = payload.length >= at + 2 ? payload.readUInt16LE(at) : 0
  at += 2
  const authLength = payload[at] ?? 0
  at += 1 + 10
  const caps = capsLow | (capsHigh << 16)
  const CLIENT_PLUGIN_AUTH = 0x00080000
  let authPlugin: string | undefined
  if ((caps & CLIENT_PLUGIN_AUTH) !== 0) {
    at += Math.max(13, authLength - 8)
    const end = payload.indexOf(0, at)
    authPlugin = payload.subarray(at, end === -1 ? payload.length : end).toString("latin1")
  }
  return { protocol, version, authPlugin }
}

/** Probe a MySQL server: config `host`, `port`. */
export const probe = (
  request: ProbeRequest,
  env: ProbeEnv
): Effect.Effect<string, ProbeFailure, Scope.Scope | Resolver> =>
  Effect.gen(function* () {
    const wire = yield* Target.openConfigured(request, env, DEFAULT_PORT)
    const head = yield* wire.read(4)
    const length = head.readUIntLE(0, 3)
    if (length < 1 || length > 64 * 1024 || head[3] !== 0) {
      return yield* fail("protocol_error", `${wire.where} does not speak the MySQL protocol`)
    }
    const payload = yield* wire.read(length)
    if (payload[0] === 0xff) {
      const code = payload.length >= 3 ? payload.readUInt16LE(1) : 0
      const message = clean(payload.subarray(payload[3] === 0x23 ? 9 : 3).toString("utf8"))
      const detail = `${wire.where}: ${message} (MySQL error ${code})`
      // 1130: host not allowed to connect; 1129: host blocked after connection errors.
      return yield* fail(code === 1130 || code === 1129 ? "authentication_failed" : "protocol_error", detail)
    }
    const greeting = parseGreeting(payload)
    if (greeting === undefined) return yield* fail("protocol_error", `${wire.where} does not speak the MySQL protocol`)
    const plugin = greeting.authPlugin === undefined ? "" : `, auth plugin ${clean(greeting.authPlugin, 60)}`
    return `MySQL server ${clean(greeting.version, 80)} greeted (protocol ${greeting.protocol}${plugin})`
  })
