/**
 * Port: connection probes — a real, cheap check that a data connector's target answers (TCP connect, a
 * protocol handshake, an HTTP HEAD, a bucket check), through the SSRF guard and with a timeout.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import type { Config, ProbeStrategy } from "./Catalog.ts"

export interface ProbeRequest {
  readonly strategy: ProbeStrategy
  readonly config: Config
  readonly credentials: Readonly<Record<string, Redacted.Redacted<string>>>
  readonly allowPrivateNetwork: boolean
  readonly timeoutMillis: number
}

/** The outcome of a probe. A failed probe is a result, not an error: it becomes the connection's status. */
export type ProbeResult =
  | { readonly ok: true; readonly detail: string }
  | {
      readonly ok: false
      readonly reason: "unreachable" | "timeout" | "authentication_failed" | "protocol_error" | "refused" | "not_found"
      readonly detail: string
    }

export class Probe extends Context.Service<
  Probe,
  {
    readonly probe: (request: ProbeRequest) => Effect.Effect<ProbeResult>
  }
>()("@switchboard/core/Probe") {}
