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
import * as Wire from "./internal/wire.ts"

/** Probe a TCP port: config `host`, `port`. */
export const probe = (
  request: ProbeRequest,
  env: ProbeEnv
): Effect.Effect<string, ProbeFailure, Scope.Scope | Resolver> =>
  Effect.gen(function* () {
    const target: Target.HostPort = {
      host: yield* Target.host(request.config.host),
      port: yield* Target.port(request.config.port, undefined)
    }
    const endpoint = yield* Target.pin(target, env.allowPrivateNetwork)
    const wire = yield* Wire.open(env.connect, endpoint, false)
    return `${wire.where} accepts TCP connections`
  })
