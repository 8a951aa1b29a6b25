/**
 * `switchboard mcp`: the stdio MCP server for IDEs and desktop AI tools, embedded on the data directory or
 * through the daemon (`--via`, as every command; see `Access.calls`). Nothing but protocol goes to stdout.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Command, Flag } from "effect/cli"
import { DaemonError } from "../DaemonError.ts"
import * as RequestTool from "../mcp/RequestTool.ts"
import * as StdioServer from "../mcp/StdioServer.ts"
import { Access } from "./Access.ts"
import * as CassetteFlags from "./CassetteFlags.ts"
import { root } from "./Commands.ts"

const positive = (name: string, fallback: number, description: string) =>
  Flag.Int(name).pipe(
    Flag.withDescription(description),
    Flag.filter(
      (n) => n > 0,
      (n) => `--${name} must be positive, not ${n}`
    ),
    Flag.withDefault(fallback)
  )

const noCalls = new DaemonError({
  reason: "daemon_not_running",
  message: "this build of the CLI cannot call upstreams (its access offers no calling services)"
})

export const mcp = Command.make(
  "mcp",
  {
    connection: Flag.String("connection").pipe(
      Flag.withDescription("Offer only this connection (name or id); repeatable"),
      Flag.atLeast(0)
    ),
    tools: Flag.String("tools").pipe(
      Flag.withDescription("Offer only these tools: names or patterns with *, comma-separated; repeatable"),
      Flag.atLeast(0)
    ),
    listTimeout: positive("list-timeout-ms", 5000, "How long tools/list waits for slow upstreams"),
    pollInterval: positive("poll-interval-ms", 2000, "How often to check for changed connections"),
    maxBody: positive("max-body-bytes", RequestTool.defaultMaxBodyBytes, "The longest body a request tool returns"),
    record: CassetteFlags.record,
    replay: CassetteFlags.replay
  },
  Effect.fn(function* (input) {
    const flags = yield* root
    const access = yield* Access
    if (access.calls === undefined) return yield* noCalls
    const cassette = yield* CassetteFlags.cassetteOf(input)
    yield* StdioServer.run({
      version: "0.1.0",
      services: access.calls({ home: Option.getOrUndefined(flags.home), via: flags.via, cassette }),
      connections: input.connection,
      tools: input.tools,
      listDeadline: input.listTimeout,
      pollInterval: input.pollInterval,
      maxBodyBytes: input.maxBody
    })
  })
).pipe(
  Command.withDescription("Serve every connection's tools to an MCP client over stdio"),
  Command.withExamples([
    { command: "switchboard mcp", description: "All active connections" },
    {
      command: "switchboard mcp --connection github --tools 'github__*_issue*'",
      description: "Only GitHub's issue tools"
    }
  ])
)
