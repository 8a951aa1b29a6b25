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
import * as ChildProcess from "node:child_process"
import { interleavedLoad, latencyRow, report, type Row, seconds, todoRow } from "./harness.ts"
import { mcpBenchSetup, mcpRemoteBin } from "./mcpSetup.ts"
import { stop, switchboardBin } from "./processes.ts"

const began = performance.now()
const ROUNDS = Number(process.env.SB_BENCH_COLDSTART_ROUNDS ?? 9)
const { home, env, upstream, url } = await mcpBenchSetup("sbc-")

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
