/**
 * Tool-manifest pinning from the command line (see `ToolPins`), as subcommands of `switchboard tools`:
 *
 * - `switchboard tools diff <connection>`: the connection's pinned tools against what its MCP server offers now,
 *   tool by tool and field by field, descriptions in full (that is where tool poisoning hides).
 * - `switchboard tools approve <connection> [--tool name]`: approve the current tools (or one) as the new pin;
 *   under the `block` policy that is what makes a new or changed tool visible and callable.
 *
 * Both go through the daemon when one runs (it lists, pins and approves), else embedded on the data directory.
 */
import * as ToolPins from "@switchboard/core/ToolPins"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import { Argument, Command, Flag } from "effect/cli"
import { root } from "./Commands.ts"
import * as Output from "./Output.ts"
import { withCallsService } from "./WithCalls.ts"

/** Run `f` with the `ToolPinning` reached the way the root flags say (embedded or through the daemon). */
const withPinning = <A, E>(f: (pinning: ToolPins.ToolPinning["Service"]) => Effect.Effect<A, E>) =>
  withCallsService(ToolPins.ToolPinning, "tool pinning", f).pipe(
    // The pin warning of a listing goes to stderr: stdout is the answer (`--json`).
    Effect.provideService(Logger.LogToStderr, true)
  )

const indent = (text: string, prefix: string) =>
  text
    .split("\n")
    .map((line) => `${prefix}${line}`)
    .join("\n")

const show = (value: unknown) => (typeof value === "string" ? value : JSON.stringify(value, null, 2))

const marks: Record<ToolPins.ChangeKind, string> = { added: "+", removed: "-", changed: "~" }

/** The human form of a pin and its pending changes. */
export const render = (view: ToolPins.PinsView): string => {
  const lines: Array<string> = [
    Output.details([
      ["connection", `${view.connection_name} (${view.connection})`],
      ["connector", `${view.connector_id} v${view.connector_version}`],
      ["policy", view.policy],
      ["pinned", `${view.pinned_at} by ${view.pinned_by}, ${view.pinned.length} tools, ${view.pinned_hash}`],
      ["server now", view.current_hash]
    ])
  ]
  if (view.changes.length === 0) {
    lines.push("", "no changes: the server's tools match the pin")
    return lines.join("\n")
  }
  const withheld = new Set(view.withheld)
  lines.push("", `${view.changes.length} changed since pinned:`)
  for (const change of view.changes) {
    const state =
      change.change === "removed" ? "" : withheld.has(change.tool) && view.policy === "block" ? ": withheld" : ""
    lines.push(`${marks[change.change]} ${change.tool} (${change.change})${state}`)
    for (const field of change.fields) {
      lines.push(`    ${field.field}:`)
      if (field.before !== undefined) lines.push(indent(show(field.before), "      - "))
      if (field.after !== undefined) lines.push(indent(show(field.after), "      + "))
    }
  }
  lines.push("", "approve after review, only if nothing changed since:")
  lines.push(`  all:  switchboard tools approve ${view.connection_name} --hash ${view.current_hash}`)
  for (const change of view.changes) {
    if (change.after_hash === null) continue
    lines.push(
      `  one:  switchboard tools approve ${view.connection_name} --tool ${change.tool} --hash ${change.after_hash}`
    )
  }
  return lines.join("\n")
}

const connectionArg = Argument.String("connection").pipe(Argument.withDescription("Connection id or name"))

const diff = Command.make(
  "diff",
  { connection: connectionArg },
  Effect.fn(function* ({ connection }) {
    const flags = yield* root
    const view = yield* withPinning((p) => p.show(connection))
    yield* Output.print(flags.json, view, () => render(view))
  })
).pipe(
  Command.withDescription(
    "Show how a connection's MCP tools differ from their pinned manifest (descriptions in full: tool poisoning)"
  )
)

const approve = Command.make(
  "approve",
  {
    connection: connectionArg,
    tool: Flag.String("tool").pipe(Flag.withDescription("Approve only this tool"), Flag.optional),
    hash: Flag.String("hash").pipe(
      Flag.withDescription("Only if the server still offers what was reviewed: the hash `tools diff` printed"),
      Flag.optional
    )
  },
  Effect.fn(function* ({ connection, tool, hash }) {
    const flags = yield* root
    const input = {
      ...(Option.isSome(tool) ? { tool: tool.value } : {}),
      ...(Option.isSome(hash) ? { hash: hash.value } : {})
    }
    const view = yield* withPinning((p) => p.approve(connection, input))
    yield* Output.print(flags.json, view, () => `approved\n${render(view)}`)
  })
).pipe(
  Command.withDescription("Approve a connection's current MCP tools (or one) as its pinned manifest"),
  Command.withExamples([
    { command: "switchboard tools diff github", description: "Review what changed upstream" },
    { command: "switchboard tools approve github --tool create_issue", description: "Approve one changed tool" }
  ])
)

/** The pinning subcommands of `switchboard tools`. */
export const pinCommands = [diff, approve] as const
