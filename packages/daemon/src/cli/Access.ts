/**
 * How CLI commands reach a Switchboard: embedded on the data directory, or through a running daemon. The
 * commands only see the `Switchboard` service (and `Proxy` and `Tools` for the commands that call upstreams); the
 * `Access` service decides where they come from, so tests can hand the CLI an in-memory Switchboard and the
 * binary the real one.
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
    /**
     * The Switchboard with the calling services (`Proxy`, `Tools`), reached the same way as `layer`: through the
     * daemon (its proxy route and tool endpoints) or embedded. Absent, commands that call upstreams say so.
     */
    readonly calls?: ((options: AccessOptions) => Layer.Layer<Layers.Services, unknown>) | undefined
  }
>()("@switchboard/daemon/cli/Access") {}

/** Through the daemon when one answers on the socket (or when `--via daemon` insists), else embedded. */
const choose = <A>(
  options: AccessOptions,
  socket: string,
  remote: Layer.Layer<A, unknown>,
  local: Layer.Layer<A, unknown>
): Layer.Layer<A, unknown> => {
  if (options.via === "embedded") return local
  if (options.via === "daemon") {
    return Layer.unwrap(
      Effect.flatMap(Client.isRunning(socket), (running) =>
        running
          ? Effect.succeed(remote)
          : Effect.fail(
              new DaemonError({
                reason: "daemon_not_running",
                message: `no daemon answers on ${socket}; start one with: switchboard daemon start --detach`
              })
            )
      )
    )
  }
  return Layer.unwrap(Effect.map(Client.isRunning(socket), (running) => (running ? remote : local)))
}

/**
 * The real access: through the daemon when one answers on the socket (or when `--via daemon` insists), else
 * embedded on the data directory's sealed SQLite file.
 */
export const layerLive = Layer.succeed(
  Access,
  Access.of({
    layer: (options) => {
      const paths = Layers.resolvePaths({ home: options.home })
      return choose(options, paths.socket, Client.layerRemote(paths.socket), Layers.embedded({ home: options.home }))
    },
    calls: (options) => {
      const paths = Layers.resolvePaths({ home: options.home })
      const remote = Layer.merge(Client.layerRemote(paths.socket), Client.layerRemoteCalls(paths.socket))
      // Embedded, the daemon configuration's network switch applies as it would in the daemon.
      const local = Layer.unwrap(
        Effect.map(Layers.readConfig(paths), (config) =>
          Layers.withCalls(Layers.embedded({ home: options.home }), { allowPrivateNetwork: config.allowPrivateNetwork })
        )
      )
      return choose(options, paths.socket, remote, local)
    }
  })
)
