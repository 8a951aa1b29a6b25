/**
 * Hosts and ports of probe targets, checked by the one SSRF guard (`Ssrf.resolve`): a host and port become an
 * `http://host:port/` URL only to reuse its parsing (the WHATWG host rules, numeric IPv4 forms), its single
 * lookup and its address classification, and the probe then connects to the pinned address and nowhere else.
 */
import type { ProbeRequest } from "@switchboard/core/Probe"
import type { Resolver } from "@switchboard/core/Resolver"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { isIP } from "node:net"
import * as Ssrf from "../../http/Ssrf.ts"
import type { ProbeEnv } from "./env.ts"
import { type Endpoint, describe, open, type Wire } from "./wire.ts"
import { ProbeFailure } from "./failure.ts"

export interface HostPort {
  readonly host: string
  readonly port: number
}

const HOSTNAME = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_.])?$/u

const invalid = (detail: string) => new ProbeFailure({ reason: "protocol_error", detail })

/** A port from config (a number or a numeric string), else the default. */
export const port = (
  value: unknown,
  fallback: number | undefined,
  field = "port"
): Effect.Effect<number, ProbeFailure> => {
  const n =
    value === undefined || value === ""
      ? fallback
      : typeof value === "number"
        ? value
        : typeof value === "string" && /^\d{1,5}$/u.test(value.trim())
          ? Number(value.trim())
          : Number.NaN
  if (n === undefined) return Effect.fail(invalid(`config field "${field}" is missing`))
  return Number.isInteger(n) && n >= 1 && n <= 65535
    ? Effect.succeed(n)
    : Effect.fail(invalid(`config field "${field}" is not a port number from 1 to 65535`))
}

/** A host from config: a name or an IP literal (IPv6 with or without brackets). */
export const host = (value: unknown, field = "host"): Effect.Effect<string, ProbeFailure> => {
  if (typeof value !== "string" || value.trim() === "")
    return Effect.fail(invalid(`config field "${field}" is missing`))
  const raw = value.trim()
  const bare = raw.startsWith("[") && raw.endsWith("]") ? raw.slice(1, -1) : raw
  if (isIP(bare) !== 0 || HOSTNAME.test(bare)) return Effect.succeed(bare)
  return Effect.fail(invalid(`config field "${field}" is not a host name or IP address`))
}

/** `host:port`, `[v6]:port` or `host` (with the default port), as in Kafka's bootstrap servers. */
export const parseHostPort = (
  text: string,
  fallbackPort: number | undefined,
  field: string
): Effect.Effect<HostPort, ProbeFailure> =>
  Effect.gen(function* () {
    // A listener name prefix (SASL_SSL://host:9092) says nothing about where to connect.
    const raw = text.trim().replace(/^[A-Za-z_][A-Za-z0-9_+.-]*:\/\//u, "")
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/u.exec(raw)
    if (bracketed !== null) {
      return { host: yield* host(bracketed[1], field), port: yield* port(bracketed[2], fallbackPort, field) }
    }
    const colons = raw.split(":").length - 1
    if (colons === 1) {
      const [h, p] = raw.split(":")
      return { host: yield* host(h, field), port: yield* port(p, fallbackPort, field) }
    }
    return { host: yield* host(raw, field), port: yield* port(undefined, fallbackPort, field) }
  })

/** Resolve once, check every address against the SSRF rules, and give the one endpoint to connect to. */
export const pin = (
  target: HostPort,
  allowPrivateNetwork: boolean
): Effect.Effect<Endpoint & { readonly where: string }, ProbeFailure, Resolver> =>
  Ssrf.resolve(`http://${isIP(target.host) === 6 ? `[${target.host}]` : target.host}/`, { allowPrivateNetwork }).pipe(
    Effect.mapError((error) =>
      error.reason === "destination_refused"
        ? new ProbeFailure({ reason: "refused", detail: error.message })
        : new ProbeFailure({ reason: "unreachable", detail: error.message })
    ),
    Effect.map((pinned) => {
      const endpoint: Endpoint = {
        address: pinned.address.address,
        family: pinned.address.family,
        port: target.port,
        hostname: pinned.hostname
      }
      return { ...endpoint, where: describe(endpoint) }
    })
  )

/**
 * The plain-TCP opening most probes share: `host` and `port` from config (the port defaulting), the address
 * checked and pinned by the SSRF guard, and a connection to exactly that address.
 */
export const openConfigured = (
  request: ProbeRequest,
  env: ProbeEnv,
  defaultPort: number | undefined
): Effect.Effect<Wire, ProbeFailure, Resolver | Scope.Scope> =>
  Effect.gen(function* () {
    const target: HostPort = {
      host: yield* host(request.config.host),
      port: yield* port(request.config.port, defaultPort)
    }
    const endpoint = yield* pin(target, env.allowPrivateNetwork)
    return yield* open(env.connect, endpoint, false)
  })
