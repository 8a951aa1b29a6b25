/**
 * Port: outgoing HTTP to REST upstreams, guarded against SSRF. Auth values arrive `Redacted` and are
 * revealed only when the request is written; bodies stream both ways.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import type * as Stream from "effect/Stream"
import type { UpstreamError } from "./Errors.ts"

export interface UpstreamRequest {
  readonly method: string
  readonly url: string
  readonly headers: Readonly<Record<string, string | Redacted.Redacted<string>>>
  readonly body?: Stream.Stream<Uint8Array, UpstreamError> | undefined
  /** Allow loopback and private targets (local-first exception, explicit per connection). */
  readonly allowPrivateNetwork: boolean
  /** The id of the connection the request belongs to, for adapters that keep state per connection (record/replay). */
  readonly key?: string | undefined
  readonly connectTimeoutMillis?: number | undefined
  readonly totalTimeoutMillis?: number | undefined
}

export interface UpstreamResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: Stream.Stream<Uint8Array, UpstreamError>
}

export class Upstream extends Context.Service<
  Upstream,
  {
    readonly request: (request: UpstreamRequest) => Effect.Effect<UpstreamResponse, UpstreamError>
  }
>()("@switchboard/core/Upstream") {}
