#!/usr/bin/env node
/**
 * The `switchboard` binary: runs the CLI with the real access (embedded or through the daemon), as the local
 * user's principal, and exits with the code the command chose.
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Principal from "@switchboard/core/Principal"
import * as Access from "./cli/Access.ts"
import * as Main from "./cli/Main.ts"
import * as Layers from "./Layers.ts"

// A reader that stops early (`switchboard request … | head`) closes the pipe: exit quietly, as Unix tools do.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0)
})

NodeRuntime.runMain(
  Main.run(process.argv.slice(2)).pipe(
    Effect.flatMap((code) =>
      Effect.sync(() => {
        if (code !== 0 || process.exitCode === undefined) process.exitCode = code
      })
    ),
    // Every command acts as this machine's user, as the daemon and `switchboard mcp` do, so what one creates
    // (a personal connection, a user credential) the others see as the same owner.
    Effect.provideService(Principal.CurrentPrincipal, Layers.localPrincipal()),
    Effect.provide(Layer.mergeAll(NodeServices.layer, Access.layerLive))
  ),
  { disableErrorReporting: true }
)
