/**
 * `switchboard demo`: the whole loop with no outside account (see `demo/Demo.ts`).
 */
import * as Effect from "effect/Effect"
import { Command, Flag } from "effect/cli"
import * as Demo from "../demo/Demo.ts"

export const demo = Command.make(
  "demo",
  {
    keep: Flag.Boolean("keep").pipe(
      Flag.withDescription("Keep the throwaway data directory to look around in afterwards"),
      Flag.withDefault(false)
    )
  },
  Effect.fn(function* ({ keep }) {
    yield* Demo.run({ keep })
  })
).pipe(
  Command.withDescription(
    "Show the whole loop on loopback: upstreams, connectors, sealed credentials, tools, proxy, tests, audit"
  )
)
