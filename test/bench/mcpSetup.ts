/**
 * The setting the MCP benchmarks share: the test suite's streamable HTTP MCP server (its own process on loopback)
 * and a sealed SQLite data directory holding one connection to it, `up`, for `switchboard mcp` to run on embedded;
 * the environment both `switchboard mcp` and the peer `mcp-remote` run with. The directory is removed at exit.
 */
import * as Principal from "@switchboard/core/Principal"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Layers from "@switchboard/daemon/Layers"
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { server } from "./processes.ts"

/** The peer bridge, run with the same Node. */
export const mcpRemoteBin = Path.join(import.meta.dirname, "..", "node_modules", "mcp-remote", "dist", "proxy.js")

export const mcpBenchSetup = async (prefix: string) => {
  const home = Fs.mkdtempSync(Path.join(Os.tmpdir(), prefix))
  process.on("exit", () => Fs.rmSync(home, { recursive: true, force: true }))
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    SWITCHBOARD_MASTER_KEY: Buffer.from(new Uint8Array(32).map((_, i) => (i * 13 + 5) & 0xff)).toString("base64"),
    // No daemon answers here, so `switchboard mcp` runs embedded on the data directory.
    SWITCHBOARD_SOCKET: Path.join(home, "no-daemon.sock"),
    // mcp-remote keeps its state here rather than in ~/.mcp-auth.
    MCP_REMOTE_CONFIG_DIR: Path.join(home, "mcp-remote")
  }

  const upstream = await server<{ url: string }>("mcp")
  const url = upstream.info.url

  const paths = Layers.resolvePaths({ home, env })
  await Effect.runPromise(Layers.ensureDataDir(paths))
  const seed = ManagedRuntime.make(Layers.switchboardLayer({ kind: "sqlite", paths, env }))
  await seed.runPromise(
    Effect.gen(function* () {
      const sb = yield* Switchboard.Switchboard
      yield* sb.createConnector({ name: "up", display_name: "Up", kind: "mcp", proxy_url: url, auth_patterns: [] })
      // The default rate limit (10 per second, bursts of 20) would refuse a load; the upstream is ours.
      yield* sb.createConnection("up", {
        name: "up",
        allow_private_network: true,
        rate_limit: { requests_per_second: 10_000, burst: 10_000 }
      })
    }).pipe(Effect.provideService(Principal.CurrentPrincipal, Layers.localPrincipal()))
  )
  await seed.dispose()
  return { home, env, upstream, url }
}
