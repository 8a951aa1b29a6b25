#!/usr/bin/env node
/**
 * The `switchboard` binary: runs the CLI with the real access (embedded or through the daemon) and exits with
 * the code the command chose.
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Access from "./cli/Access.ts"
import * as Main from "./cli/Main.ts"

NodeRuntime.runMain(
  Main.run(process.argv.slice(2)).pipe(
    Effect.flatMap((code) =>
      Effect.sync(() => {
        if (code !== 0 || process.exitCode === undefined) process.exitCode = code
      })
    ),
    Effect.provide(Layer.mergeAll(NodeServices.layer, Access.layerLive))
  ),
  { disableErrorReporting: true }
)
