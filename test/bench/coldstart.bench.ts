/**
 * Cold start of the stdio MCP server `switchboard mcp` (embedded on a sealed SQLite data directory holding one
 * connection to the test suite's streamable HTTP MCP server, its own process on loopback): spawn → `initialize`
 * answered → `tools/list` answered (the upstream's tools listed through Switchboard) → closed. Interleaved with
 * - `node -e ""`, the floor of any Node process. Target: ≤ 2× the floor;
 * - the peer `mcp-remote` bridging the same server over stdio. Target: faster;
 * - `switchboard mcp` run from its TypeScript sources (`SWITCHBOARD_FROM_SOURCES=1`), which is what the `switchboard`
 *   bin falls back to without a fresh build (`pnpm build`): the gain of the built entry, in the same run.
 * When `switchboard mcp` does not answer, the figures are reported as TODO rows.
 */
/* oxlint-disable no-await-in-loop -- a benchmark measures one thing at a time, on purpose */
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import * as Principal from "@switchboard/core/Principal"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Layers from "@switchboard/daemon/Layers"
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { interleavedLoad, latencyRow, report, type Row, seconds, todoRow } from "./harness.ts"
import { server, stop, switchboardBin } from "./processes.ts"

const began = performance.now()
const ROUNDS = Number(process.env.SB_BENCH_COLDSTART_ROUNDS ?? 9)
const home = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sbc-"))
process.on("exit", () => Fs.rmSync(home, { recursive: true, force: true }))
const env: Record<string, string> = {
  ...(process.env as Record<string, string>),
  SWITCHBOARD_MASTER_KEY: Buffer.from(new Uint8Array(32).map((_, i) => (i * 13 + 5) & 0xff)).toString("base64"),
  // No daemon answers here, so `switchboard mcp` runs embedded on the data directory.
  SWITCHBOARD_SOCKET: Path.join(home, "no-daemon.sock"),
  // mcp-remote keeps its state here rather than in ~/.mcp-auth.
  MCP_REMOTE_CONFIG_DIR: Path.join(home, "mcp-remote")
}
const mcpRemoteBin = Path.join(import.meta.dirname, "..", "node_modules", "mcp-remote", "dist", "proxy.js")

const upstream = await server<{ url: string }>("mcp")
const url = upstream.info.url

const paths = Layers.resolvePaths({ home, env })
await Effect.runPromise(Layers.ensureDataDir(paths))
const seed = ManagedRuntime.make(Layers.switchboardLayer({ kind: "sqlite", paths, env }))
await seed.runPromise(
  Effect.gen(function* () {
    const sb = yield* Switchboard.Switchboard
    yield* sb.createConnector({ name: "up", display_name: "Up", kind: "mcp", proxy_url: url, auth_patterns: [] })
    yield* sb.createConnection("up", { name: "up", allow_private_network: true })
  }).pipe(Effect.provideService(Principal.CurrentPrincipal, Layers.localPrincipal()))
)
await seed.dispose()

const names = {
  floor: 'node -e ""',
  switchboard: "switchboard mcp",
  sources: "switchboard mcp (from sources)",
  mcpRemote: "mcp-remote"
}
const figure = "MCP cold start: spawn → initialize → tools/list"

/** Spawn → initialize answered → tools/list answered, then the process is closed. */
const coldStart =
  (args: ReadonlyArray<string>, expect: string, extraEnv: Record<string, string> = {}) =>
  async () => {
    const client = new Client({ name: "switchboard-bench", version: "0.1.0" })
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [...args],
        env: { ...env, ...extraEnv },
        stderr: "ignore"
      })
    )
    const { tools } = await client.listTools()
    await client.close()
    if (!tools.some((t) => t.name === expect)) {
      throw new Error(`no ${expect} in the tool list of ${args.join(" ")}: ${tools.map((t) => t.name).join(", ")}`)
    }
  }
const nodeFloor = () =>
  new Promise<void>((resolve, reject) => {
    const child = ChildProcess.spawn(process.execPath, ["-e", ""], { stdio: "ignore" })
    child.once("error", reject)
    child.once("exit", () => resolve())
  })

const switchboardArgs = [switchboardBin, "--home", home, "mcp"]
const mcpRemoteArgs = [mcpRemoteBin, url, "--transport", "http-only", "--silent"]
const switchboard = coldStart(switchboardArgs, "up__echo")
const works = await switchboard().then(
  () => true,
  (error: unknown) => {
    console.error(`  switchboard mcp did not start: ${String(error)}`)
    return false
  }
)

const rows: Array<Row> = []
if (works) {
  const starts = await interleavedLoad(
    [
      { name: names.floor, call: nodeFloor },
      { name: names.switchboard, call: switchboard },
      { name: names.sources, call: coldStart(switchboardArgs, "up__echo", { SWITCHBOARD_FROM_SOURCES: "1" }) },
      { name: names.mcpRemote, call: coldStart(mcpRemoteArgs, "echo") }
    ],
    { rounds: ROUNDS, requests: 1, concurrency: 1, warmup: 1 }
  )
  rows.push(
    latencyRow(starts, {
      id: "mcp_cold_start",
      figure,
      subject: names.switchboard,
      baseline: names.floor,
      target: (ratio) => ({ text: "≤ 2×", met: ratio <= 2 })
    }),
    latencyRow(starts, {
      id: "mcp_cold_start_vs_mcp_remote",
      figure,
      subject: names.switchboard,
      baseline: names.mcpRemote,
      target: (ratio) => ({ text: "< 1× (faster)", met: ratio < 1 })
    }),
    latencyRow(starts, {
      id: "mcp_cold_start_vs_sources",
      figure: `${figure}: the built entry against the TypeScript sources`,
      subject: names.switchboard,
      baseline: names.sources,
      note: "the bin runs the build (`pnpm build`) when it is fresh, else the sources"
    })
  )
} else {
  rows.push(todoRow("mcp_cold_start", figure, "≤ 2× node -e, < mcp-remote", "switchboard mcp does not work yet"))
}
report(rows)
await stop(upstream.child)
console.log(`  cold start done (${seconds(began)})`)
