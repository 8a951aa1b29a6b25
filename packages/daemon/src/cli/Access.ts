/**
 * How CLI commands reach a Switchboard: embedded on the data directory, or through a running daemon (on the data
 * directory's socket, or a team server on TCP when `SWITCHBOARD_URL` and `SWITCHBOARD_API_KEY` name one). The
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
  /** Record or replay upstream traffic (`--record`/`--replay`): the calls then run embedded. */
  readonly cassette?: Layers.CassetteOptions | undefined
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

/**
 * Through the daemon when one answers on the socket (or when `--via daemon` insists), else embedded. A team server
 * named by `SWITCHBOARD_URL` is used for `auto` and `daemon` alike, and never silently replaced by the local data
 * directory: unreachable, or refusing the key (`unauthorized`), the command fails.
 */
const choose = <A>(
  options: AccessOptions,
  socket: string,
  remote: (target: Client.Target) => Layer.Layer<A, unknown>,
  local: Layer.Layer<A, unknown>
): Layer.Layer<A, unknown> => {
  if (options.via === "embedded") return local
  return Layer.unwrap(
    Effect.gen(function* () {
      const tcp = yield* Client.tcpTargetOf()
      if (tcp !== undefined) {
        yield* Client.health(tcp).pipe(
          Effect.timeoutOrElse({
            duration: "10 seconds",
            orElse: () =>
              Effect.fail(
                new DaemonError({
                  reason: "daemon_not_running",
                  message: `the Switchboard server ${Client.describeTarget(tcp)} did not answer within 10 seconds`
                })
              )
          })
        )
        return remote(tcp)
      }
      if (yield* Client.isRunning(socket)) return remote(socket)
      if (options.via !== "daemon") return local
      return yield* new DaemonError({
        reason: "daemon_not_running",
        message: `no daemon answers on ${socket}; start one with: switchboard daemon start --detach`
      })
    })
  )
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
      return choose(
        options,
        paths.socket,
        (target) => Client.layerRemote(target),
        Layers.embedded({ home: options.home })
      )
    },
    calls: (options) => {
      const paths = Layers.resolvePaths({ home: options.home })
      const remote = (target: Client.Target) => Layer.merge(Client.layerRemote(target), Client.layerRemoteCalls(target))
      // Embedded, the daemon configuration's network switch applies as it would in the daemon.
      const local = Layer.unwrap(
        Effect.map(Layers.readConfig(paths), (config) =>
          Layers.withCalls(Layers.embedded({ home: options.home }), {
            allowPrivateNetwork: config.allowPrivateNetwork,
            cassette: options.cassette
          })
        )
      )
      if (options.cassette !== undefined) {
        // The daemon makes its own upstream calls: recording or replaying here means calling embedded.
        if (options.via !== "daemon") return local
        return Layer.effectContext(
          Effect.fail(
            new DaemonError({
              reason: "config_invalid",
              message: `--${options.cassette.mode} runs the calls embedded, not through the daemon: drop --via daemon, or start the daemon with --${options.cassette.mode}`
            })
          )
        )
      }
      return choose(options, paths.socket, remote, local)
    }
  })
)
