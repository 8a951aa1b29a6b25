/**
 * Resilience per connection, driven by TestClock against a scripted upstream: the circuit breaker (closed,
 * open for 30 s, one half-open trial), the token-bucket rate limit with the seconds to wait, and retries with
 * backoff only for idempotent requests, only on connection failures and 502/503/504, never after the body
 * started to stream.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Deferred from "effect/Deferred"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import { UpstreamError } from "@switchboard/core/Errors"
import * as Resilience from "@switchboard/core/Resilience"
import type { UpstreamResponse } from "@switchboard/core/Upstream"

const response = (status: number): UpstreamResponse => ({ status, headers: {}, body: Stream.empty })

const unreachable = new UpstreamError({ reason: "upstream_unreachable", message: "could not reach h: ECONNREFUSED" })
const connectTimeout = new UpstreamError({
  reason: "upstream_timeout",
  message: "connecting timed out",
  details: { timeout: "connect", timeout_ms: 10 }
})
const totalTimeout = new UpstreamError({
  reason: "upstream_timeout",
  message: "timed out",
  details: { timeout: "total", timeout_ms: 10 }
})
const refused = new UpstreamError({ reason: "destination_refused", message: "refused 10.0.0.1" })

type Answer = UpstreamResponse | UpstreamError

/** An upstream that answers from a script (the last answer repeats) and counts its calls. */
const scripted = (...answers: ReadonlyArray<Answer>) => {
  let calls = 0
  const send = (_body: Stream.Stream<Uint8Array, UpstreamError> | undefined) =>
    Effect.suspend(() => {
      const answer = answers[Math.min(calls, answers.length - 1)] as Answer
      calls++
      return answer instanceof UpstreamError ? Effect.fail(answer) : Effect.succeed(answer)
    })
  return { send, calls: () => calls }
}

const run = <A, E>(effect: Effect.Effect<A, E, Resilience.Resilience>) => effect.pipe(Effect.provide(Resilience.layer))

/** Run with time passing: the effect is forked and the clock moved on until it is done. */
const withTime = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(effect)
    for (let i = 0; i < 10; i++) yield* TestClock.adjust("1 second")
    return yield* Fiber.join(fiber)
  })

const post = { key: "conn_a", method: "POST" } as const
const get = { key: "conn_a", method: "GET" } as const

describe("circuit breaker", () => {
  it.effect("opens after 5 consecutive failures and answers circuit_open without calling the upstream", () =>
    run(
      Effect.gen(function* () {
        const r = yield* Resilience.Resilience
        const up = scripted(response(500), response(502), unreachable, totalTimeout, response(503))
        for (let i = 0; i < 5; i++) yield* Effect.result(r.http(post, up.send))
        assert.strictEqual(up.calls(), 5)
        assert.strictEqual(yield* r.circuit("conn_a"), "open")
        const error = yield* Effect.flip(r.http(post, up.send))
        assert.strictEqual(error.reason, "circuit_open")
        assert.strictEqual(error.status, 503)
        assert.deepStrictEqual(error.details, { retry_after_seconds: 30, state: "open" })
        assert.strictEqual(up.calls(), 5)
        yield* TestClock.adjust("20 seconds")
        const later = yield* Effect.flip(r.http(post, up.send))
        assert.deepStrictEqual(later.details, { retry_after_seconds: 10, state: "open" })
        assert.strictEqual(up.calls(), 5)
      })
    )
  )

  it.effect("after 30 s one trial goes through: a success closes the circuit, a failure reopens it", () =>
    run(
      Effect.gen(function* () {
        const r = yield* Resilience.Resilience
        const failing = scripted(response(500))
        for (let i = 0; i < 5; i++) yield* r.http(post, failing.send)
        yield* TestClock.adjust("30 seconds")
        const trial = yield* r.http(post, failing.send)
        assert.strictEqual(trial.status, 500)
        assert.strictEqual(failing.calls(), 6)
        assert.strictEqual((yield* Effect.flip(r.http(post, failing.send))).reason, "circuit_open")
        yield* TestClock.adjust("30 seconds")
        const healthy = scripted(response(200))
        assert.strictEqual((yield* r.http(post, healthy.send)).status, 200)
        assert.strictEqual(yield* r.circuit("conn_a"), "closed")
        assert.strictEqual((yield* r.http(post, healthy.send)).status, 200)
        assert.strictEqual(healthy.calls(), 2)
      })
    )
  )

  it.effect("lets only one trial through while half-open", () =>
    run(
      Effect.gen(function* () {
        const r = yield* Resilience.Resilience
        const failing = scripted(unreachable)
        for (let i = 0; i < 5; i++) yield* Effect.result(r.http(post, failing.send))
        yield* TestClock.adjust("30 seconds")
        const release = yield* Deferred.make<void>()
        let trials = 0
        const slow = () =>
          Effect.suspend(() => {
            trials++
            return Effect.as(Deferred.await(release), response(200))
          })
        const trial = yield* Effect.forkChild(r.http(post, slow), { startImmediately: true })
        const second = yield* Effect.flip(r.http(post, slow))
        assert.strictEqual(second.reason, "circuit_open")
        assert.deepInclude(second.details as object, { state: "half_open" })
        yield* Deferred.succeed(release, undefined)
        assert.strictEqual((yield* Fiber.join(trial)).status, 200)
        assert.strictEqual(trials, 1)
        assert.strictEqual(yield* r.circuit("conn_a"), "closed")
      })
    )
  )

  it.effect("4xx answers, refusals and local limits say nothing about the upstream's health", () =>
    run(
      Effect.gen(function* () {
        const r = yield* Resilience.Resilience
        const up = scripted(response(404), response(401), refused, response(429))
        for (let i = 0; i < 12; i++) yield* Effect.result(r.http(post, up.send))
        assert.strictEqual(yield* r.circuit("conn_a"), "closed")
        yield* TestClock.adjust("10 seconds") // refill the rate limit
        // A success resets the streak: 4 failures, a success, 4 failures stay closed.
        const mixed = scripted(response(500), response(500), response(500), response(500), response(200))
        for (let i = 0; i < 5; i++) yield* r.http(post, mixed.send)
        const more = scripted(response(500))
        for (let i = 0; i < 4; i++) yield* r.http(post, more.send)
        assert.strictEqual(yield* r.circuit("conn_a"), "closed")
      })
    )
  )

  it.effect("keeps one circuit per connection", () =>
    run(
      Effect.gen(function* () {
        const r = yield* Resilience.Resilience
        const failing = scripted(response(503))
        for (let i = 0; i < 5; i++) yield* r.http(post, failing.send)
        assert.strictEqual(yield* r.circuit("conn_a"), "open")
        assert.strictEqual(yield* r.circuit("conn_b"), "closed")
        const ok = scripted(response(200))
        assert.strictEqual((yield* r.http({ key: "conn_b", method: "POST" }, ok.send)).status, 200)
      })
    )
  )

  it.effect("guards other calls (MCP tools, probes) with the same circuit", () =>
    run(
      Effect.gen(function* () {
        const r = yield* Resilience.Resilience
        for (let i = 0; i < 5; i++) yield* Effect.result(r.guard("conn_m", Effect.fail(unreachable)))
        const error = yield* Effect.flip(r.guard("conn_m", Effect.succeed("never")))
        assert.strictEqual(error.reason, "circuit_open")
        yield* TestClock.adjust("30 seconds")
        assert.strictEqual(yield* r.guard("conn_m", Effect.succeed("trial")), "trial")
      })
    )
  )
})

describe("rate limit", () => {
  it.effect("allows a burst of 20, then answers rate_limited with the seconds to wait", () =>
    run(
      Effect.gen(function* () {
        const r = yield* Resilience.Resilience
        const up = scripted(response(200))
        for (let i = 0; i < 20; i++) yield* r.http(get, up.send)
        const error = yield* Effect.flip(r.http(get, up.send))
        assert.strictEqual(error.reason, "rate_limited")
        assert.strictEqual(error.status, 429)
        assert.deepStrictEqual(error.details, { retry_after_seconds: 1, requests_per_second: 10, burst: 20 })
        assert.strictEqual(up.calls(), 20)
        yield* TestClock.adjust("100 millis")
        assert.strictEqual((yield* r.http(get, up.send)).status, 200)
        assert.strictEqual((yield* Effect.flip(r.http(get, up.send))).reason, "rate_limited")
        // Another connection has its own bucket.
        assert.strictEqual((yield* r.http({ key: "conn_b", method: "GET" }, up.send)).status, 200)
      })
    )
  )

  it.effect("takes the connection's own rate and burst", () =>
    run(
      Effect.gen(function* () {
        const r = yield* Resilience.Resilience
        const up = scripted(response(200))
        const slow = { ...get, rateLimit: { requestsPerSecond: 0.1, burst: 2 } }
        yield* r.http(slow, up.send)
        yield* r.http(slow, up.send)
        const error = yield* Effect.flip(r.http(slow, up.send))
        assert.deepInclude(error.details as object, { retry_after_seconds: 10 })
        yield* TestClock.adjust("4 seconds")
        assert.deepInclude((yield* Effect.flip(r.http(slow, up.send))).details as object, { retry_after_seconds: 6 })
        yield* TestClock.adjust("6 seconds")
        assert.strictEqual((yield* r.http(slow, up.send)).status, 200)
        assert.strictEqual(up.calls(), 3)
      })
    )
  )

  it.effect("reads the tokens left without taking one (what explain shows)", () =>
    run(
      Effect.gen(function* () {
        const r = yield* Resilience.Resilience
        const up = scripted(response(200))
        const small = { ...get, rateLimit: Resilience.rateLimitOf({ requests_per_second: 1, burst: 3 }) }
        assert.strictEqual(yield* r.tokens(small.key, small.rateLimit), 3)
        yield* r.http(small, up.send)
        yield* r.http(small, up.send)
        // Reading twice changes nothing: still one call allowed, then a refusal.
        assert.strictEqual(yield* r.tokens(small.key, small.rateLimit), 1)
        assert.strictEqual(yield* r.tokens(small.key, small.rateLimit), 1)
        yield* r.http(small, up.send)
        assert.strictEqual(yield* r.tokens(small.key, small.rateLimit), 0)
        assert.strictEqual((yield* Effect.flip(r.http(small, up.send))).reason, "rate_limited")
        yield* TestClock.adjust("2 seconds")
        assert.strictEqual(yield* r.tokens(small.key, small.rateLimit), 2)
        assert.strictEqual(yield* r.tokens("conn_other"), 20)
      })
    )
  )
})

describe("retries", () => {
  it.effect("retries an idempotent request after connection failures, with backoff", () =>
    run(
      Effect.gen(function* () {
        const r = yield* Resilience.Resilience
        const up = scripted(unreachable, connectTimeout, response(200))
        const result = yield* withTime(r.http(get, up.send))
        assert.strictEqual(result.status, 200)
        assert.strictEqual(up.calls(), 3)
        // The backoff waits: without time passing, the second attempt does not happen.
        const stuck = scripted(unreachable, response(200))
        const fiber = yield* Effect.forkChild(r.http({ key: "conn_b", method: "PUT" }, stuck.send))
        yield* TestClock.adjust("10 millis")
        assert.strictEqual(stuck.calls(), 1)
        yield* TestClock.adjust("1 second")
        assert.strictEqual((yield* Fiber.join(fiber)).status, 200)
        assert.strictEqual(stuck.calls(), 2)
      })
    )
  )

  it.effect("retries 502, 503 and 504 answers at most twice, then returns the last answer", () =>
    run(
      Effect.gen(function* () {
        const r = yield* Resilience.Resilience
        const up = scripted(response(502), response(504), response(503), response(200))
        const result = yield* withTime(r.http({ ...get, method: "DELETE" }, up.send))
        assert.strictEqual(result.status, 503)
        assert.strictEqual(up.calls(), 3)
      })
    )
  )

  it.effect("never retries other answers, other errors or non-idempotent methods", () =>
    run(
      Effect.gen(function* () {
        const r = yield* Resilience.Resilience
        for (const [i, answer] of [response(500), response(429), totalTimeout, refused].entries()) {
          const up = scripted(answer, response(200))
          yield* Effect.result(withTime(r.http({ key: `k${i}`, method: "GET" }, up.send)))
          assert.strictEqual(up.calls(), 1)
        }
        for (const method of ["POST", "PATCH"]) {
          const up = scripted(unreachable, response(200))
          const error = yield* Effect.flip(withTime(r.http({ key: method, method }, up.send)))
          assert.strictEqual(error.reason, "upstream_unreachable")
          assert.strictEqual(up.calls(), 1)
          const busy = scripted(response(503), response(200))
          assert.strictEqual((yield* withTime(r.http({ key: `${method}2`, method }, busy.send))).status, 503)
          assert.strictEqual(busy.calls(), 1)
        }
      })
    )
  )

  it.effect("never retries once the request body started to stream; re-sends a body never read", () =>
    run(
      Effect.gen(function* () {
        const r = yield* Resilience.Resilience
        const body = Stream.make(new Uint8Array([1, 2]), new Uint8Array([3]))
        let calls = 0
        const consumed: Array<number> = []
        const readsThenBusy = (b: Stream.Stream<Uint8Array, UpstreamError> | undefined) =>
          Effect.gen(function* () {
            calls++
            const chunks = yield* Stream.runCollect(b ?? Stream.empty)
            consumed.push(chunks.reduce((n, c) => n + c.length, 0))
            return response(503)
          })
        const answer = yield* withTime(r.http({ key: "put", method: "PUT", body }, readsThenBusy))
        assert.strictEqual(answer.status, 503)
        assert.strictEqual(calls, 1)

        const bodies: Array<number> = []
        let attempts = 0
        const failsBeforeReading = (b: Stream.Stream<Uint8Array, UpstreamError> | undefined) =>
          Effect.gen(function* () {
            attempts++
            if (attempts === 1) return yield* unreachable
            const chunks = yield* Stream.runCollect(b ?? Stream.empty)
            bodies.push(chunks.reduce((n, c) => n + c.length, 0))
            return response(201)
          })
        const retried = yield* withTime(r.http({ key: "put2", method: "PUT", body }, failsBeforeReading))
        assert.strictEqual(retried.status, 201)
        assert.strictEqual(attempts, 2)
        assert.deepStrictEqual(bodies, [3])
      })
    )
  )

  it.effect("a call rescued by retries is one success for the breaker; one that is not is one failure", () =>
    run(
      Effect.gen(function* () {
        const r = yield* Resilience.Resilience
        for (let i = 0; i < 4; i++) {
          yield* Effect.result(withTime(r.http(get, scripted(unreachable).send)))
        }
        assert.strictEqual(yield* r.circuit("conn_a"), "closed")
        const up = scripted(unreachable)
        yield* Effect.result(withTime(r.http(get, up.send)))
        assert.strictEqual(up.calls(), 3)
        assert.strictEqual(yield* r.circuit("conn_a"), "open")
      })
    )
  )
})
