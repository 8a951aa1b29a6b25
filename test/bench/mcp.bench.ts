/**
 * The stdio MCP server `switchboard mcp` (embedded on a sealed SQLite data directory) in front of the test suite's
 * streamable HTTP MCP server (SDK, unauthenticated, its own process on loopback):
 * - `tools/call` latency (echo, one at a time) from the SDK client through `switchboard mcp` (client → stdio →
 *   Switchboard → streamable HTTP → server), against the same client calling the server directly, and against the
 *   peer `mcp-remote` bridging the same server over stdio. Target: ≤ 1.3× direct at p50, faster than mcp-remote.
 * When `switchboard mcp` does not answer, the figure is reported as a TODO row. Its cold start is coldstart.bench.ts's.
 */
/* oxlint-disable no-await-in-loop -- a benchmark measures one thing at a time, on purpose */
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import { interleavedLoad, latencyRow, report, type Row, seconds, todoRow } from "./harness.ts"
import { mcpBenchSetup, mcpRemoteBin } from "./mcpSetup.ts"
import { stop, switchboardBin } from "./processes.ts"

const began = performance.now()
const { home, env, upstream, url } = await mcpBenchSetup("sbm-")

const stdio = (args: ReadonlyArray<string>) =>
  new StdioClientTransport({ command: process.execPath, args: [...args], env, stderr: "ignore" })
const switchboardArgs = [switchboardBin, "--home", home, "mcp"]
const mcpRemoteArgs = [mcpRemoteBin, url, "--transport", "http-only", "--silent"]

const connect = async (transport: StdioClientTransport | StreamableHTTPClientTransport) => {
  const client = new Client({ name: "switchboard-bench", version: "0.1.0" })
  await client.connect(transport)
  return client
}

const echo = (client: Client, name: string) => async () => {
  const result = await client.callTool({ name, arguments: { text: "hello" } })
  if (result.isError === true) throw new Error(`${name} failed: ${JSON.stringify(result.content)}`)
}

const rows: Array<Row> = []
const names = { direct: "SDK client → server", switchboard: "switchboard mcp", mcpRemote: "mcp-remote" }

// --- tools/call --------------------------------------------------------------------------------------------------

const direct = await connect(new StreamableHTTPClientTransport(new URL(url)))
const viaRemote = await connect(stdio(mcpRemoteArgs))
const viaSwitchboard = await connect(stdio(switchboardArgs)).catch((error: unknown) => {
  console.error(`  switchboard mcp did not start: ${String(error)}`)
  return undefined
})
const works =
  viaSwitchboard !== undefined &&
  (await echo(viaSwitchboard, "up__echo")().then(
    () => true,
    (error: unknown) => {
      console.error(`  switchboard mcp did not answer tools/call: ${String(error)}`)
      return false
    }
  ))
console.log(`  clients connected (${seconds(began)})`)

if (works && viaSwitchboard !== undefined) {
  const calls = await interleavedLoad(
    [
      { name: names.direct, call: echo(direct, "echo") },
      { name: names.switchboard, call: echo(viaSwitchboard, "up__echo") },
      { name: names.mcpRemote, call: echo(viaRemote, "echo") }
    ],
    { rounds: 6, requests: 150, concurrency: 1, warmup: 100 }
  )
  const direct1 = latencyRow(calls, {
    id: "mcp_tools_call",
    figure: "MCP tools/call through switchboard mcp",
    subject: names.switchboard,
    baseline: names.direct
  })
  const peer = latencyRow(calls, {
    id: "mcp_tools_call_vs_mcp_remote",
    figure: "MCP tools/call through switchboard mcp",
    subject: names.switchboard,
    baseline: names.mcpRemote,
    target: (ratio) => ({ text: "< 1× (faster)", met: ratio < 1 })
  })
  rows.push({ ...direct1, target: { text: "≤ 1.3×", met: (direct1.ratio ?? Number.POSITIVE_INFINITY) <= 1.3 } }, peer)
} else {
  rows.push(
    todoRow(
      "mcp_tools_call",
      "MCP tools/call through switchboard mcp",
      "≤ 1.3× direct, < mcp-remote",
      "switchboard mcp does not work yet"
    )
  )
}
await Promise.all([direct.close(), viaRemote.close(), viaSwitchboard?.close()])
report(rows)
await stop(upstream.child)
console.log(`  tools/call done (${seconds(began)})`)
