/**
 * Resilience per connection, for every upstream call: a token-bucket rate limit (answering `rate_limited` with
 * the seconds to wait), a circuit breaker (closed → open after 5 consecutive failures → half-open after 30 s,
 * letting one trial call through) answering `circuit_open` without contacting the upstream, and retries with
 * exponential backoff for idempotent HTTP requests only, only on connection failures and 502/503/504, and never
 * once the request body has started to stream.
 *
 * Built on Effect's own primitives, all driven by `Clock` (so TestClock drives them): `CircuitBreaker` and
 * `RateLimiter` from `effect/persistence` over their in-memory stores, keyed by connection, and `Effect.retry`
 * with a `Schedule`. Only the retry decision is ours: it depends on the method, the response status and whether
 * the body was read, which no generic schedule can see.
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as CircuitBreaker from "effect/persistence/CircuitBreaker"
import * as RateLimiter from "effect/persistence/RateLimiter"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { UpstreamError } from "./Errors.ts"
import type { UpstreamResponse } from "./Upstream.ts"

export interface RateLimit {
  readonly requestsPerSecond: number
  readonly burst: number
}

export interface Options {
  /** Consecutive failures (5xx, timeouts, unreachable, protocol errors) that open a circuit. */
  readonly failureThreshold: number
  /** How long an open circuit refuses calls before letting one trial through. */
  readonly openFor: Duration.Input
  /** The rate limit of a connection that sets none. */
  readonly rateLimit: RateLimit
  /** Retries of an idempotent request (on top of the first attempt), and the first backoff delay. */
  readonly retries: number
  readonly backoff: Duration.Input
}

export const defaults: Options = {
  failureThreshold: 5,
  openFor: "30 seconds",
  rateLimit: { requestsPerSecond: 10, burst: 20 },
  retries: 2,
  backoff: "200 millis"
}

/** One HTTP call: the key is the connection id; the body is re-sent on a retry only if it was never read. */
export interface HttpCall {
  readonly key: string
  readonly method: string
  readonly body?: Stream.Stream<Uint8Array, UpstreamError> | undefined
  readonly rateLimit?: Partial<RateLimit> | undefined
}

export type CircuitState = "closed" | "open" | "half_open"

export class Resilience extends Context.Service<
  Resilience,
  {
    /** Run one HTTP exchange through the rate limit, the breaker and (when allowed) retries. */
    readonly http: (
      call: HttpCall,
      send: (
        body: Stream.Stream<Uint8Array, UpstreamError> | undefined
      ) => Effect.Effect<UpstreamResponse, UpstreamError>
    ) => Effect.Effect<UpstreamResponse, UpstreamError>
    /** Run any other upstream call (an MCP tool call, a probe) through the rate limit and the breaker. */
    readonly guard: <A>(
      key: string,
      effect: Effect.Effect<A, UpstreamError>,
      options?: { readonly rateLimit?: Partial<RateLimit> | undefined }
    ) => Effect.Effect<A, UpstreamError>
    readonly circuit: (key: string) => Effect.Effect<CircuitState>
  }
>()("@switchboard/core/Resilience") {}

/** RFC 9110 idempotent methods: repeating them has the same effect as sending them once. */
export const idempotentMethods: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"])

const retryStatuses: ReadonlySet<number> = new Set([502, 503, 504])

/** The upstream could not be reached at all: nothing was sent, so trying again is safe for idempotent calls. */
export const isConnectFailure = (error: UpstreamError): boolean =>
  error.reason === "upstream_unreachable" ||
  (error.reason === "upstream_timeout" &&
    typeof error.details === "object" &&
    error.details !== null &&
    "timeout" in error.details &&
    error.details.timeout === "connect")

const countedReasons: ReadonlySet<UpstreamError["reason"]> = new Set([
  "upstream_unreachable",
  "upstream_timeout",
  "upstream_protocol_error"
])

/** Refusals and local limits say nothing about the upstream's health; a 5xx answer does. */
const classifyError = <A>(exit: Exit.Exit<A, UpstreamError>): CircuitBreaker.Outcome => {
  if (Exit.isSuccess(exit)) return CircuitBreaker.success
  const error = Cause.findErrorOption(exit.cause)
  if (error._tag === "None") return CircuitBreaker.failure()
  return countedReasons.has(error.value.reason) ? CircuitBreaker.failure() : CircuitBreaker.ignored
}

const classifyHttp = (exit: Exit.Exit<UpstreamResponse, UpstreamError>): CircuitBreaker.Outcome =>
  Exit.isSuccess(exit)
    ? exit.value.status >= 500
      ? CircuitBreaker.failure()
      : CircuitBreaker.success
    : classifyError(exit)

const seconds = (millis: number): number => Math.max(1, Math.ceil(millis / 1000))

/** A 502/503/504 answer to an idempotent request, carried as a failure so `Effect.retry` sees it. */
class RetryableStatus extends Data.TaggedError("RetryableStatus")<{ readonly response: UpstreamResponse }> {}

/** Build the service over fresh in-memory breaker and limiter stores. */
export const make = (options: Partial<Options> = {}) =>
  Effect.gen(function* () {
    const config: Options = { ...defaults, ...options }
    const breaker = yield* CircuitBreaker.make({
      tripPolicy: CircuitBreaker.consecutive(config.failureThreshold),
      openDuration: config.openFor
    })
    const limiter = yield* RateLimiter.make

    const admit = (key: string, rate: Partial<RateLimit> | undefined) => {
      const requestsPerSecond = rate?.requestsPerSecond ?? config.rateLimit.requestsPerSecond
      const burst = rate?.burst ?? config.rateLimit.burst
      // Effect's token bucket holds `limit` tokens and refills one every window / limit.
      return limiter
        .consume({
          algorithm: "token-bucket",
          onExceeded: "fail",
          key,
          limit: burst,
          window: Duration.millis((burst * 1000) / requestsPerSecond)
        })
        .pipe(
          Effect.asVoid,
          Effect.catchTag("RateLimiterError", (e) => {
            const wait = seconds(e.reason._tag === "RateLimitExceeded" ? Duration.toMillis(e.reason.retryAfter) : 1000)
            return Effect.fail(
              new UpstreamError({
                reason: "rate_limited",
                message: `rate limit of ${key} reached (${requestsPerSecond} requests per second, bursts of ${burst}): retry in ${wait} s`,
                details: { retry_after_seconds: wait, requests_per_second: requestsPerSecond, burst }
              })
            )
          })
        )
    }

    const open =
      (key: string) =>
      <A>(self: Effect.Effect<A, UpstreamError | CircuitBreaker.CircuitBreakerError>) =>
        Effect.catchTag(self, "CircuitBreakerError", (e) => {
          const halfOpen = e.reason._tag === "CircuitHalfOpen"
          const wait = seconds(e.reason._tag === "CircuitOpen" ? Duration.toMillis(e.reason.retryAfter) : 1000)
          return Effect.fail(
            new UpstreamError({
              reason: "circuit_open",
              message: halfOpen
                ? `calls through ${key} are paused while a trial call checks the upstream: retry in ${wait} s`
                : `calls through ${key} are paused after repeated upstream failures: retry in ${wait} s`,
              details: { retry_after_seconds: wait, state: halfOpen ? "half_open" : "open" }
            })
          )
        })

    // A discarded answer's body is closed after at most one chunk, so its connection is released.
    const discard = (response: UpstreamResponse) =>
      Stream.runHead(response.body).pipe(Effect.timeoutOption("1 second"), Effect.ignore)

    const http = Effect.fn("Resilience.http")(function* (
      call: HttpCall,
      send: (
        body: Stream.Stream<Uint8Array, UpstreamError> | undefined
      ) => Effect.Effect<UpstreamResponse, UpstreamError>
    ) {
      yield* admit(call.key, call.rateLimit)
      const idempotent = idempotentMethods.has(call.method.toUpperCase())
      const started = yield* Ref.make(false)
      const retried = yield* Ref.make(0)
      const body = call.body === undefined ? undefined : Stream.unwrap(Effect.as(Ref.set(started, true), call.body))
      const attempt = Effect.flatMap(send(body), (response) =>
        idempotent && retryStatuses.has(response.status)
          ? Effect.fail(new RetryableStatus({ response }))
          : Effect.succeed(response)
      )
      const retryable = (error: UpstreamError | RetryableStatus) =>
        Effect.gen(function* () {
          if (!idempotent || (yield* Ref.get(started))) return false
          if (error._tag === "UpstreamError" && !isConnectFailure(error)) return false
          if ((yield* Ref.getAndUpdate(retried, (n) => n + 1)) >= config.retries) return false
          if (error._tag === "RetryableStatus") yield* discard(error.response)
          return true
        })
      const withRetries = attempt.pipe(
        Effect.retry({ schedule: Schedule.exponential(config.backoff).pipe(Schedule.jittered), while: retryable }),
        Effect.catchTag("RetryableStatus", (e) => Effect.succeed(e.response))
      )
      return yield* breaker.execute(withRetries, { key: call.key, classify: classifyHttp }).pipe(open(call.key))
    })

    const guard = <A>(
      key: string,
      effect: Effect.Effect<A, UpstreamError>,
      options?: { readonly rateLimit?: Partial<RateLimit> | undefined }
    ): Effect.Effect<A, UpstreamError> =>
      admit(key, options?.rateLimit).pipe(
        Effect.andThen(breaker.execute(effect, { key, classify: classifyError })),
        open(key),
        Effect.withSpan("Resilience.guard")
      )

    const circuit = (key: string) =>
      breaker.state(key).pipe(
        Effect.map((s): CircuitState => (s._tag === "Closed" ? "closed" : s._tag === "Open" ? "open" : "half_open")),
        Effect.orElseSucceed((): CircuitState => "closed")
      )

    return Resilience.of({ http, guard, circuit })
  })

/** Resilience with the given options (defaults for the rest), each layer with its own state. */
export const layerWith = (options: Partial<Options>) =>
  Layer.effect(Resilience, make(options)).pipe(
    Layer.provide([CircuitBreaker.layerStoreMemory(), RateLimiter.layerStoreMemory])
  )

/** Resilience with the defaults: 5 failures open a circuit for 30 s; 10 requests per second, bursts of 20. */
export const layer = layerWith({})
