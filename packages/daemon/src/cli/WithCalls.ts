/**
 * Commands that need a service of the call layers (`ToolPinning`, `Explainer`, …) reach it the way the root flags
 * say: embedded on the data directory, or through the daemon when one runs.
 */
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { DaemonError } from "../DaemonError.ts"
import type { CassetteOptions } from "../Layers.ts"
import { Access } from "./Access.ts"
import { root } from "./Commands.ts"

/** The call layers the root flags point at (embedded or through the daemon), recording or replaying with `cassette`. */
export const callsLayer = (cassette?: CassetteOptions) =>
  Effect.gen(function* () {
    const flags = yield* root
    const access = yield* Access
    if (access.calls === undefined) {
      return yield* new DaemonError({ reason: "io_error", message: "this CLI was built without upstream calls" })
    }
    return access.calls({ home: Option.getOrUndefined(flags.home), via: flags.via, cassette })
  })

/** Run `f` with `service` of the call layers; `what` names it when this CLI was built without it. */
export const withCallsService = <I, S, A, E>(
  service: Context.Key<I, S>,
  what: string,
  f: (service: S) => Effect.Effect<A, E>
) =>
  Effect.gen(function* () {
    const calls = yield* callsLayer()
    const run = Effect.gen(function* () {
      const found = yield* Effect.serviceOption(service)
      if (Option.isNone(found)) {
        return yield* new DaemonError({ reason: "io_error", message: `this CLI was built without ${what}` })
      }
      return yield* f(found.value)
    })
    return yield* run.pipe(Effect.provide(calls))
  })
