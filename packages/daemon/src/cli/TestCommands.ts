/**
 * `switchboard test <connection>`: test a connection now with a real probe, embedded or through the daemon
 * (`POST /v1/connections/{id}/test`), and show what it found: the status it now has, the probe's detail and the
 * credential values masked. The connection's status, `last_tested_at` and `last_error` are updated either way.
 *
 * Exit codes: 0 when the test passes; when it fails, 6 (the target is unreachable, timed out, refused the
 * credentials or answered wrongly), 5 (the SSRF guard refused the destination) or 2 (the connector's config cannot
 * be probed); and those of every command when Switchboard itself fails (3 not found, 7 rate limited, …).
 */
import * as Api from "@switchboard/core/Api"
import * as Errors from "@switchboard/core/Errors"
import * as Testing from "@switchboard/core/Testing"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { Argument, Command } from "effect/cli"
import * as Client from "../Client.ts"
import * as Layers from "../Layers.ts"
import { Access } from "./Access.ts"
import { root } from "./Commands.ts"
import * as Output from "./Output.ts"

/** A failed call to the daemon as the typed error the embedded service would give. */
const fromDaemon = (error: unknown): Errors.SwitchboardError => {
  for (const Class of Api.errorClasses) {
    if (error instanceof Class) return Api.toSwitchboardError(Api.statusOf(error), error.error)
  }
  return new Errors.StoreError({
    message: `the Switchboard daemon could not run the test: ${Schema.isSchemaError(error) ? "unexpected answer" : "unreachable"}`,
    cause: error
  })
}

/**
 * Test through whatever the access gives: the `ConnectionTests` of an embedded Switchboard with calls, the
 * daemon's endpoint when a daemon client is there, else connection tests built here over the plain Switchboard.
 */
const runTest = (ref: string) =>
  Effect.gen(function* () {
    const local = yield* Effect.serviceOption(Testing.ConnectionTests)
    if (Option.isSome(local)) return yield* local.value.test(ref)
    const daemon = yield* Effect.serviceOption(Client.DaemonClient)
    if (Option.isSome(daemon)) {
      return yield* daemon.value.calls.test({ params: { id: ref } }).pipe(Effect.mapError(fromDaemon))
    }
    return yield* Testing.ConnectionTests.use((t) => t.test(ref)).pipe(
      Effect.provide(Layers.testingLayer({ allowPrivateNetwork: false }))
    )
  })

const show = (t: Testing.TestedConnection): string =>
  Output.details([
    ["connection", `${t.name} (${t.id})`],
    ["type", t.type],
    ["status", t.status],
    ["probe", `${t.test.strategy}: ${t.test.ok ? "ok" : (t.test.reason ?? "failed").replaceAll("_", " ")}`],
    ["detail", t.test.detail],
    ["took", `${Math.round(t.test.duration_ms)} ms`],
    ["tested at", t.last_tested_at ?? "-"],
    [
      "auth",
      Object.entries(t.auth_config)
        .map(([k, v]) => `${k}=${v}`)
        .join(" ") || "-"
    ]
  ])

/** The error a failed test exits with (its status gives the exit code). */
const failure = (t: Testing.TestedConnection): Errors.SwitchboardError => {
  const message = `connection ${t.name} failed its test: ${t.last_error ?? t.test.detail}`
  const details = { connection: t.id, reason: t.test.reason ?? "failed" }
  switch (t.test.reason ?? "protocol_error") {
    case "refused":
      return new Errors.UpstreamError({ reason: "destination_refused", message, details })
    case "invalid_config":
      return new Errors.ValidationFailed({
        message,
        details: { ...details, issues: [{ path: "config", message: t.test.detail }] }
      })
    case "timeout":
      return new Errors.UpstreamError({ reason: "upstream_timeout", message, details })
    case "unreachable":
      return new Errors.UpstreamError({ reason: "upstream_unreachable", message, details })
    case "authentication_failed":
    case "not_found":
    case "protocol_error":
      return new Errors.UpstreamError({ reason: "upstream_protocol_error", message, details })
  }
}

export const test = Command.make(
  "test",
  { ref: Argument.String("connection").pipe(Argument.withDescription("Connection id or name")) },
  Effect.fn(function* ({ ref }) {
    const flags = yield* root
    const access = yield* Access
    const options = { home: Option.getOrUndefined(flags.home), via: flags.via }
    const tested = yield* runTest(ref).pipe(
      Effect.provide(access.calls === undefined ? access.layer(options) : access.calls(options))
    )
    yield* Output.print(flags.json, tested, () => show(tested))
    if (!tested.test.ok) return yield* failure(tested)
  })
).pipe(
  Command.withDescription("Test a connection with a real probe (TCP, protocol handshake, HTTP or bucket check)"),
  Command.withExamples([{ command: "switchboard test warehouse", description: "Probe the warehouse connection" }])
)
