/**
 * Resilience per connection, for every upstream call: a token-bucket rate limit (answering `rate_limited` with
 * the seconds to wait), a circuit breaker (closed → open after 5 consecutive failures → half-open after 30 s,
 * letting one trial call through) answering `circuit_open` without contacting the upstream, and retries with
 * exponential backoff for idempotent HTTP requests only, only on connection failures and 502/503/504, and never
 * once the request body has started to stream.
 *
 * Everything is driven by `Clock` (so TestClock drives it). The breaker and the token bucket keep the states,
 * transitions and arithmetic of `effect/persistence`'s in-memory `CircuitBreaker` (consecutive failures) and
 * `RateLimiter` (token bucket), keyed by connection, as plain records updated synchronously: those modules
 * cost a scope, store round trips and a published transition on every call, more than a loopback exchange.
 * Retries are `Effect.retry` with a `Schedule`, built only once a first attempt failed in a retryable way;
 * the retry decision depends on the method, the response status and whether the body was read.
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
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
    readonly guard: <A, E = never>(
      key: string,
      effect: Effect.Effect<A, UpstreamError | E>,
      options?: { readonly rateLimit?: Partial<RateLimit> | undefined }
    ) => Effect.Effect<A, UpstreamError | E>
    readonly circuit: (key: string) => Effect.Effect<CircuitState>
    /** The tokens `key`'s rate limit has left now (a full bucket for a key not yet called), without taking one. */
    readonly tokens: (key: string, rate?: Partial<RateLimit>) => Effect.Effect<number>
  }
>()("@switchboard/core/Resilience") {}

/** A connection's `rate_limit` (wire names, each optional) as the options of `http` and `guard`. */
export const rateLimitOf = (
  rate: { readonly requests_per_second?: number | undefined; readonly burst?: number | undefined } | undefined
): Partial<RateLimit> => ({
  ...(rate?.requests_per_second === undefined ? {} : { requestsPerSecond: rate.requests_per_second }),
  ...(rate?.burst === undefined ? {} : { burst: rate.burst })
})

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

/** What an exchange tells the breaker: a success closes, a failure counts, an ignored outcome changes nothing. */
type Outcome = "success" | "failure" | "ignored"

/** Refusals and local limits say nothing about the upstream's health; a 5xx answer does. */
/** Only upstream failures count: a local error (arguments refused before sending, say) is ignored. */
const classifyError = <A, E>(exit: Exit.Exit<A, UpstreamError | E>): Outcome => {
  if (Exit.isSuccess(exit)) return "success"
  if (Cause.hasInterruptsOnly(exit.cause)) return "ignored"
  const error = Cause.findErrorOption(exit.cause)
  if (error._tag === "None") return "failure"
  if (!(error.value instanceof UpstreamError)) return "ignored"
  return countedReasons.has(error.value.reason) ? "failure" : "ignored"
}

const classifyHttp = (exit: Exit.Exit<UpstreamResponse, UpstreamError>): Outcome =>
  Exit.isSuccess(exit) ? (exit.value.status >= 500 ? "failure" : "success") : classifyError(exit)

const seconds = (millis: number): number => Math.max(1, Math.ceil(millis / 1000))

/** A 502/503/504 answer to an idempotent request, carried as a failure so `Effect.retry` sees it. */
class RetryableStatus extends Data.TaggedError("RetryableStatus")<{ readonly response: UpstreamResponse }> {}

/** One connection's token bucket (the arithmetic of `effect/persistence`'s in-memory token bucket). */
interface Bucket {
  tokens: number
  lastRefill: number
}

/**
 * One connection's circuit (the states and transitions of `effect/persistence`'s in-memory circuit breaker
 * with a consecutive-failures policy). `generation` changes on every transition, so the outcome of a call
 * admitted before one is not counted after it.
 */
interface Circuit {
  state: "closed" | "open" | "half_open"
  streak: number
  openUntil: number
  probing: boolean
  generation: number
}

/**
 * Build the service over fresh in-memory breaker and limiter state. Both are plain per-key records updated
 * synchronously on the clock's time: a call through a closed circuit costs two map lookups, not a scope,
 * a store round trip and a published transition per call.
 */
export const make = (options: Partial<Options> = {}) =>
  Effect.sync(() => {
    const config: Options = { ...defaults, ...options }
    const openForMillis = Duration.toMillis(Duration.fromInputUnsafe(config.openFor))
    const buckets = new Map<string, Bucket>()
    const circuits = new Map<string, Circuit>()
    let generations = 0

    /** The limit in force for `key`, and its bucket brought up to `now` (created full when new). */
    const refilled = (key: string, rate: Partial<RateLimit> | undefined, now: number) => {
      const requestsPerSecond = rate?.requestsPerSecond ?? config.rateLimit.requestsPerSecond
      const burst = rate?.burst ?? config.rateLimit.burst
      // The bucket holds `burst` tokens and refills one every window / burst, the window being burst / rate.
      const windowMillis = Math.max(1, (burst * 1000) / requestsPerSecond)
      const refillMillis = windowMillis / burst
      let bucket = buckets.get(key)
      if (bucket === undefined) {
        bucket = { tokens: burst, lastRefill: now }
        buckets.set(key, bucket)
      }
      const refill = Math.floor((now - bucket.lastRefill) / refillMillis)
      if (refill > 0) {
        bucket.tokens = Math.min(burst, bucket.tokens + refill)
        bucket.lastRefill += refill * refillMillis
      }
      if (bucket.tokens >= burst) bucket.lastRefill = now
      return { bucket, requestsPerSecond, burst, windowMillis, refillMillis }
    }

    /** Takes one token, or says how long until there is one. */
    const admit = (key: string, rate: Partial<RateLimit> | undefined, now: number): UpstreamError | undefined => {
      const { bucket, requestsPerSecond, burst, windowMillis, refillMillis } = refilled(key, rate, now)
      if (burst < 1) return rateLimited(key, requestsPerSecond, burst, windowMillis)
      const remaining = bucket.tokens - 1
      if (remaining >= 0) {
        bucket.tokens = remaining
        return undefined
      }
      const elapsed = Math.max(0, now - bucket.lastRefill)
      return rateLimited(key, requestsPerSecond, burst, Math.max(0, Math.ceil(-remaining) * refillMillis - elapsed))
    }

    const rateLimited = (key: string, requestsPerSecond: number, burst: number, retryAfterMillis: number) => {
      const wait = seconds(retryAfterMillis)
      return new UpstreamError({
        reason: "rate_limited",
        message: `rate limit of ${key} reached (${requestsPerSecond} requests per second, bursts of ${burst}): retry in ${wait} s`,
        details: { retry_after_seconds: wait, requests_per_second: requestsPerSecond, burst }
      })
    }

    const circuitOpen = (key: string, halfOpen: boolean, retryAfterMillis: number) => {
      const wait = seconds(retryAfterMillis)
      return new UpstreamError({
        reason: "circuit_open",
        message: halfOpen
          ? `calls through ${key} are paused while a trial call checks the upstream: retry in ${wait} s`
          : `calls through ${key} are paused after repeated upstream failures: retry in ${wait} s`,
        details: { retry_after_seconds: wait, state: halfOpen ? "half_open" : "open" }
      })
    }

    /** Lets a call through the circuit (the generation to record its outcome against), or refuses it. */
    const enter = (key: string, now: number): number | UpstreamError => {
      let circuit = circuits.get(key)
      if (circuit === undefined) {
        circuit = { state: "closed", streak: 0, openUntil: 0, probing: false, generation: ++generations }
        circuits.set(key, circuit)
      }
      if (circuit.state === "closed") return circuit.generation
      if (circuit.state === "open") {
        if (now < circuit.openUntil) return circuitOpen(key, false, circuit.openUntil - now)
        circuit.state = "half_open"
      } else if (circuit.probing) {
        return circuitOpen(key, true, 1000)
      }
      // Half-open: this call is the one trial.
      circuit.probing = true
      circuit.generation = ++generations
      return circuit.generation
    }

    const open = (circuit: Circuit, now: number) => {
      circuit.state = "open"
      circuit.generation = ++generations
      circuit.openUntil = now + openForMillis
      circuit.probing = false
      circuit.streak = 0
    }

    const record = (key: string, generation: number, outcome: Outcome, now: number) => {
      const circuit = circuits.get(key)
      if (circuit === undefined || circuit.generation !== generation) return
      if (circuit.state === "half_open") {
        if (outcome === "ignored") circuit.probing = false
        else if (outcome === "failure") open(circuit, now)
        else {
          circuit.state = "closed"
          circuit.generation = ++generations
          circuit.probing = false
          circuit.streak = 0
        }
        return
      }
      if (circuit.state !== "closed" || outcome === "ignored") return
      circuit.streak = outcome === "failure" ? circuit.streak + 1 : 0
      if (circuit.streak >= config.failureThreshold) open(circuit, now)
    }

    /**
     * Admits the call (rate limit, then circuit), runs it, and records its outcome, interruption included (an
     * interrupted call is an ignored outcome, so a half-open trial that is interrupted frees the trial slot).
     */
    const guarded = <A, E>(
      key: string,
      rate: Partial<RateLimit> | undefined,
      effect: Effect.Effect<A, UpstreamError | E>,
      classify: (exit: Exit.Exit<A, UpstreamError | E>) => Outcome
    ): Effect.Effect<A, UpstreamError | E> =>
      Effect.clockWith((clock) =>
        Effect.uninterruptibleMask((restore) => {
          const limited = admit(key, rate, clock.currentTimeMillisUnsafe())
          if (limited !== undefined) return Effect.fail(limited)
          const entered = enter(key, clock.currentTimeMillisUnsafe())
          if (typeof entered !== "number") return Effect.fail(entered)
          return Effect.onExit(restore(effect), (exit) =>
            Effect.sync(() => record(key, entered, classify(exit), clock.currentTimeMillisUnsafe()))
          )
        })
      )

    // A discarded answer's body is closed after at most one chunk, so its connection is released.
    const discard = (response: UpstreamResponse) =>
      Stream.runHead(response.body).pipe(Effect.timeoutOption("1 second"), Effect.ignore)

    const http = (
      call: HttpCall,
      send: (
        body: Stream.Stream<Uint8Array, UpstreamError> | undefined
      ) => Effect.Effect<UpstreamResponse, UpstreamError>
    ): Effect.Effect<UpstreamResponse, UpstreamError> =>
      Effect.suspend(() => {
        const idempotent = idempotentMethods.has(call.method.toUpperCase())
        let started = false
        let retried = 0
        const body =
          call.body === undefined
            ? undefined
            : Stream.unwrap(
                Effect.sync(() => {
                  started = true
                  return call.body as Stream.Stream<Uint8Array, UpstreamError>
                })
              )
        const attempt = Effect.flatMap(send(body), (response) =>
          idempotent && retryStatuses.has(response.status)
            ? Effect.fail(new RetryableStatus({ response }))
            : Effect.succeed(response)
        )
        // Whether a failed attempt may be tried again: nothing of its body was sent, and it failed to connect
        // or answered 502/503/504.
        const mayRetry = (error: UpstreamError | RetryableStatus) =>
          idempotent &&
          !started &&
          retried < config.retries &&
          (error._tag === "RetryableStatus" || isConnectFailure(error))
        const retryable = (error: UpstreamError | RetryableStatus) =>
          Effect.suspend(() => {
            if (!mayRetry(error)) return Effect.succeed(false)
            retried++
            return error._tag === "RetryableStatus" ? Effect.as(discard(error.response), true) : Effect.succeed(true)
          })
        // The retry machinery is only built once a first attempt failed in a way worth retrying: it then
        // starts from that failure, exactly as if it had run the first attempt itself.
        const withRetries = Effect.catch(attempt, (first) => {
          if (!mayRetry(first)) return Effect.fail(first)
          let replay = true
          const again = Effect.suspend(() => {
            if (!replay) return attempt
            replay = false
            return Effect.fail(first)
          })
          return Effect.retry(again, {
            schedule: Schedule.exponential(config.backoff).pipe(Schedule.jittered),
            while: retryable
          })
        }).pipe(Effect.catchTag("RetryableStatus", (e) => Effect.succeed(e.response)))
        return guarded(call.key, call.rateLimit, withRetries, classifyHttp)
      })

    const guard = <A, E = never>(
      key: string,
      effect: Effect.Effect<A, UpstreamError | E>,
      options?: { readonly rateLimit?: Partial<RateLimit> | undefined }
    ): Effect.Effect<A, UpstreamError | E> => guarded(key, options?.rateLimit, effect, classifyError)

    const circuit = (key: string) => Effect.sync((): CircuitState => circuits.get(key)?.state ?? "closed")

    const tokens = (key: string, rate?: Partial<RateLimit>) =>
      Effect.clockWith((clock) =>
        Effect.sync(() => Math.max(0, refilled(key, rate, clock.currentTimeMillisUnsafe()).bucket.tokens))
      )

    return Resilience.of({ http, guard, circuit, tokens })
  })

/** Resilience with the given options (defaults for the rest), each layer with its own state. */
export const layerWith = (options: Partial<Options>) => Layer.effect(Resilience, make(options))

/** Resilience with the defaults: 5 failures open a circuit for 30 s; 10 requests per second, bursts of 20. */
export const layer = layerWith({})
