/**
 * The `switchboard` process: runs the CLI with the real access (embedded or through the daemon), as the local
 * user's principal, and exits with the code the command chose. Started by `bin/switchboard.js`, from the build
 * (`pnpm build`) or from these sources. `switchboard mcp`, which an MCP client starts for every session, loads only
 * its own command tree (`McpMain`); every other command loads the whole CLI (`Main`). The daemon gets its heap
 * settings (`HeapTuning`).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Principal from "@switchboard/core/Principal"
import * as Layers from "../Layers.ts"
import * as HeapTuning from "../HeapTuning.ts"
import * as Access from "./Access.ts"
import { isDaemonStart, isMcp } from "./Runner.ts"

// A reader that stops early (`switchboard request … | head`) closes the pipe: exit quietly, as Unix tools do.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0)
})

const argv = process.argv.slice(2)
if (isDaemonStart(argv)) HeapTuning.applyDaemonFlags()
const main = isMcp(argv) ? await import("./McpMain.ts") : await import("./Main.ts")

NodeRuntime.runMain(
  main.run(argv).pipe(
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
