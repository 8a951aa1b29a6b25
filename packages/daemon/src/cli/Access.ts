/**
 * How CLI commands reach a Switchboard: embedded on the data directory, or through a running daemon. The
 * commands only see the `Switchboard` service; the `Access` service decides where it comes from, so tests
 * can hand the CLI an in-memory Switchboard and the binary the real one.
 */
import type * as Switchboard from "@switchboard/core/Switchboard"
import * as Context from "effect/Context"
import type * as Layer from "effect/Layer"

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
