/**
 * How CLI commands reach a Switchboard: embedded on the data directory, or through a running daemon. The
 * commands only see the `Switchboard` service; the `Access` service decides where it comes from, so tests
 * can hand the CLI an in-memory Switchboard and the binary the real one.
 */
import type * as Switchboard from "@switchboard/core/Switchboard"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Client from "../Client.ts"
import { DaemonError } from "../DaemonError.ts"
import * as Layers from "../Layers.ts"

export type Via = "auto" | "daemon" | "embedded"

export interface AccessOptions {
  /** The data directory; `$SWITCHBOARD_HOME` or the XDG default when absent. */
  readonly home: string | undefined
  readonly via: Via
}

export class Access extends Context.Service<
  Access,
  {
    readonly layer: (options: AccessOptions) => Layer.Layer<Switchboard.Switchboard, unknown>
  }
>()("@switchboard/daemon/cli/Access") {}

/**
 * The real access: through the daemon when one answers on the socket (or when `--via daemon` insists), else
 * embedded on the data directory's sealed SQLite file.
 */
export const layerLive = Layer.succeed(
  Access,
  Access.of({
    layer: (options) => {
      const paths = Layers.resolvePaths({ home: options.home })
      const remote = Client.layerRemote(paths.socket)
      const local = Layers.embedded({ home: options.home })
      if (options.via === "embedded") return local
      if (options.via === "daemon") {
        return Layer.unwrap(
          Effect.flatMap(Client.isRunning(paths.socket), (running) =>
            running
              ? Effect.succeed(remote)
              : Effect.fail(
                  new DaemonError({
                    reason: "daemon_not_running",
                    message: `no daemon answers on ${paths.socket}; start one with: switchboard daemon start --detach`
                  })
                )
          )
        )
      }
      return Layer.unwrap(Effect.map(Client.isRunning(paths.socket), (running) => (running ? remote : local)))
    }
  })
)
