/**
 * What every probe gets besides its request: how sockets are opened, the daemon-wide private-network switch,
 * extra CAs, how SRV records are looked up, and reading credential values (revealed only here, at the moment
 * they are used).
 */
import type { ProbeRequest } from "@switchboard/core/Probe"
import * as Redacted from "effect/Redacted"
import type * as Effect from "effect/Effect"
import type * as Tls from "node:tls"
import type { Connect } from "../../http/Upstream.ts"
import type { ProbeFailure } from "./failure.ts"

export interface SrvRecord {
  readonly name: string
  readonly port: number
}

export interface ProbeEnv {
  readonly connect: Connect
  readonly allowPrivateNetwork: boolean
  readonly ca: Tls.ConnectionOptions["ca"] | undefined
  readonly resolveSrv: (name: string) => Effect.Effect<ReadonlyArray<SrvRecord>, ProbeFailure>
}

/** A credential value, revealed; `undefined` when absent or empty. */
export const secret = (request: ProbeRequest, name: string): string | undefined => {
  const value = request.credentials[name]
  if (value === undefined) return undefined
  const text = Redacted.value(value)
  return text === "" ? undefined : text
}

/** A config value as text; `undefined` when absent or empty. */
export const text = (request: ProbeRequest, name: string): string | undefined => {
  const value = request.config[name]
  if (value === undefined || value === "") return undefined
  return String(value)
}

/** A boolean config flag (`true`, `"true"`, `"1"`, `"yes"`). */
export const flag = (request: ProbeRequest, name: string): boolean | undefined => {
  const value = request.config[name]
  if (value === undefined || value === "") return undefined
  if (typeof value === "boolean") return value
  return ["true", "1", "yes", "on", "require", "required"].includes(String(value).trim().toLowerCase())
}
