/**
 * `--record <dir>` and `--replay <dir>`, shared by `daemon start`, `mcp`, `request` and `tools list|call`: record
 * the proxy's and MCP tools' upstream traffic into cassettes (secrets redacted), or serve it back from them with no
 * network and no credentials, so agent tests run offline and the same every time. On the CLI's own commands they
 * run the calls embedded (a running daemon records or replays only when started with the flag).
 */
import { ValidationFailed } from "@switchboard/core/Errors"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Flag } from "effect/cli"
import * as Path from "node:path"
import type { CassetteOptions } from "../Layers.ts"

export const record = Flag.String("record").pipe(
  Flag.withDescription("Record upstream traffic (proxy and MCP) into cassettes in this directory, secrets redacted"),
  Flag.optional
)

export const replay = Flag.String("replay").pipe(
  Flag.withDescription("Answer upstream calls from the cassettes in this directory: no network, no credentials"),
  Flag.optional
)

/** The cassette options the two flags give (an absolute directory), or none; both at once is invalid. */
export const cassetteOf = (input: {
  readonly record: Option.Option<string>
  readonly replay: Option.Option<string>
}): Effect.Effect<CassetteOptions | undefined, ValidationFailed> => {
  if (Option.isSome(input.record) && Option.isSome(input.replay)) {
    const message = "give --record or --replay, not both"
    return Effect.fail(new ValidationFailed({ message, details: { issues: [{ path: "replay", message }] } }))
  }
  if (Option.isSome(input.record)) return Effect.succeed({ mode: "record", dir: Path.resolve(input.record.value) })
  if (Option.isSome(input.replay)) return Effect.succeed({ mode: "replay", dir: Path.resolve(input.replay.value) })
  return Effect.succeed(undefined)
}

/** The flags again, for a detached child process. */
export const argsOf = (cassette: CassetteOptions | undefined): Array<string> =>
  cassette === undefined ? [] : [`--${cassette.mode}`, cassette.dir]
