/**
 * The plain TCP probe: the port accepts a connection at the checked address. For targets without a cheaper
 * protocol-level check.
 */
import type { ProbeRequest } from "@switchboard/core/Probe"
import type { Resolver } from "@switchboard/core/Resolver"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { ProbeEnv } from "./internal/env.ts"
import type { ProbeFailure } from "./internal/failure.ts"
import * as Target from "./internal/target.ts"

/** Probe a TCP port: config `host`, `port`. */
export const probe = (
  request: ProbeRequest,
  env: ProbeEnv
): Effect.Effect<string, ProbeFailure, Scope.Scope | Resolver> =>
  Effect.gen(function* () {
    const wire = yield* Target.openConfigured(request, env, undefined)
    return `${wire.where} accepts TCP connections`
  })
