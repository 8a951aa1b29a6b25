/**
 * Record and replay through the real binary: `switchboard daemon start --record <dir>` proxying to a REST server
 * and calling a streamable HTTP MCP server on 127.0.0.1, then `--replay <dir>` with both servers stopped and the
 * connections made again with a wrong token or none; and `switchboard mcp --record/--replay` driven by the SDK's
 * stdio client, the way an IDE runs it, plus `switchboard tools call --replay`. Misses are `cassette_miss` (502),
 * canaries appear in no cassette and no output.
 */
import { spawn, spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, afterEach, assert, describe, it } from "vitest"
import { HttpServers } from "../../support/mcp/index.ts"
import { killAll, request, type Sandbox, sandbox, type Spawned, waitHealthy } from "../daemon/harness.ts"
import { binPath, dataDir, start } from "../mcp-server/harness.ts"
import { CANARY_MCP, CANARY_TOKEN, canaries, canariesIn, startEchoServer } from "./support.ts"

const boxes: Array<Sandbox> = []
afterEach(() => killAll())
afterAll(() => {
  for (const box of boxes) box.cleanup()
})

/** `switchboard daemon start` in the foreground, in the sandbox's environment. */
const startDaemon = async (box: Sandbox, args: ReadonlyArray<string>) => {
  const child = spawn(process.execPath, [binPath, "daemon", "start", "--store", "memory", ...args], {
    env: box.env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let out = ""
  let err = ""
  child.stdout.on("data", (c: Buffer) => (out += c.toString("utf8")))
  child.stderr.on("data", (c: Buffer) => (err += c.toString("utf8")))
  const exited = new Promise<number>((resolve) => child.once("exit", (code) => resolve(code ?? 128)))
  const spawned: Spawned = { child, stdout: () => out, stderr: () => err, exited }
  await waitHealthy(box, spawned)
  return spawned
}

const stopDaemon = async (spawned: Spawned) => {
  spawned.child.kill("SIGTERM")
  await spawned.exited
}

const bearer = (mcp: boolean) => ({
  type: "BEARER",
  display_name: "Token",
  fields: [{ field_name: "token", label: "Token", input_type: "password", required: true }],
  ...(mcp ? { is_mcp: true } : {})
})

/** The connectors and connections, over the socket; `token` null leaves the REST connection without credentials. */
const configure = async (socket: string, rest: string, mcp: string, tokens: { rest: string | null; mcp: string }) => {
  const created = [
    await request(socket, "POST", "/v1/connectors", {
      name: "echo-api",
      display_name: "Echo",
      proxy_url: `${rest}/api`,
      auth_patterns: [bearer(false)]
    }),
    await request(socket, "POST", "/v1/connectors", {
      name: "tools",
      display_name: "Tools",
      kind: "mcp",
      proxy_url: mcp,
      auth_patterns: [bearer(true)]
    })
  ]
  for (const c of created) assert.strictEqual(c.status, 201, c.text)
  const echo = await request(socket, "POST", "/v1/connectors/echo-api/connections", {
    name: "echo",
    access_scope: "personal",
    allow_private_network: true,
    ...(tokens.rest === null ? {} : { security: { token: tokens.rest } })
  })
  assert.strictEqual(echo.status, 201, echo.text)
  const tools = await request(socket, "POST", "/v1/connectors/tools/connections", {
    name: "mcp-tools",
    access_scope: "personal",
    allow_private_network: true,
    security: { token: tokens.mcp }
  })
  assert.strictEqual(tools.status, 201, tools.text)
  return { echo: echo.json.id as string }
}

describe("record and replay through the daemon", () => {
  it("records proxy and tool calls, then replays them with the servers stopped and other credentials", async () => {
    const box = sandbox()
    boxes.push(box)
    const cassettes = Path.join(box.dir, "cassettes")
    const rest = await startEchoServer()
    const mcp = await HttpServers.startStreamable()

    const recording = await startDaemon(box, ["--record", cassettes])
    const ids = await configure(box.socket, rest.origin, mcp.url, { rest: CANARY_TOKEN, mcp: CANARY_MCP })
    const live = await request(box.socket, "GET", `/v1/connections/${ids.echo}/proxy/items?x=1`)
    assert.strictEqual(live.status, 200, live.text)
    assert.strictEqual(live.json.authorization, `Bearer ${CANARY_TOKEN}`)
    const posted = await request(box.socket, "POST", `/v1/connections/${ids.echo}/proxy/items`, { name: "x" })
    assert.strictEqual(posted.status, 200)
    const called = await request(box.socket, "POST", "/v1/connectors/tools/tools/add/call", {
      arguments: { a: 2, b: 3 },
      connection: "mcp-tools"
    })
    assert.strictEqual(called.status, 200, called.text)
    await stopDaemon(recording)
    const restHits = rest.hits.length
    const mcpCalls = mcp.state.calls.length
    await rest.stop()
    await mcp.stop()
    assert.deepStrictEqual(canariesIn(cassettes), [])
    assert.deepStrictEqual(Fs.readdirSync(cassettes).sort(), ["echo.json", "mcp-tools.json"])

    // A fresh (memory) daemon: the connections again, the REST one without credentials, the MCP one with a wrong token.
    const replaying = await startDaemon(box, ["--replay", cassettes])
    const again = await configure(box.socket, rest.origin, mcp.url, { rest: null, mcp: "wrong-token-0000" })
    const replayed = await request(box.socket, "GET", `/v1/connections/${again.echo}/proxy/items?x=1`)
    assert.strictEqual(replayed.status, 200, replayed.text)
    assert.deepStrictEqual(replayed.json, { ...live.json, authorization: "[REDACTED]" })
    const postedAgain = await request(box.socket, "POST", `/v1/connections/${again.echo}/proxy/items`, { name: "x" })
    assert.strictEqual(postedAgain.text, posted.text.replace(`Bearer ${CANARY_TOKEN}`, "[REDACTED]"))
    const calledAgain = await request(box.socket, "POST", "/v1/connectors/tools/tools/add/call", {
      arguments: { b: 3, a: 2 },
      connection: "mcp-tools"
    })
    assert.strictEqual(calledAgain.status, 200, calledAgain.text)
    assert.deepStrictEqual(calledAgain.json, called.json)
    const miss = await request(box.socket, "DELETE", `/v1/connections/${again.echo}/proxy/items/7`)
    assert.strictEqual(miss.status, 502, miss.text)
    assert.strictEqual(miss.json.error.code, "cassette_miss")
    assert.include(miss.json.error.message, "DELETE /api/items/7")
    const toolMiss = await request(box.socket, "POST", "/v1/connectors/tools/tools/add/call", {
      arguments: { a: 1, b: 1 },
      connection: "mcp-tools"
    })
    assert.strictEqual(toolMiss.status, 502, toolMiss.text)
    assert.strictEqual(toolMiss.json.error.code, "cassette_miss")
    await stopDaemon(replaying)

    assert.strictEqual(rest.hits.length, restHits)
    assert.strictEqual(mcp.state.calls.length, mcpCalls)
    for (const canary of canaries) {
      assert.notInclude(recording.stderr() + replaying.stderr() + replaying.stdout(), canary)
    }
  }, 90_000)

  it("refuses --record and --replay together", () => {
    const box = sandbox()
    boxes.push(box)
    const result = spawnSync(process.execPath, [binPath, "daemon", "start", "--record", box.dir, "--replay", box.dir], {
      env: box.env,
      encoding: "utf8"
    })
    assert.strictEqual(result.status, 2, result.stderr)
    assert.include(result.stderr, "not both")
  })
})

describe("record and replay through switchboard mcp and switchboard tools", () => {
  it("serves recorded tools and results with the server stopped and a wrong token", async () => {
    const data = dataDir()
    const cassettes = Path.join(Path.dirname(data.home), "cassettes")
    const mcp = await HttpServers.startStreamable()
    try {
      await data.use((sb) =>
        sb.createConnector({
          name: "tools",
          display_name: "Tools",
          kind: "mcp",
          proxy_url: mcp.url,
          auth_patterns: [bearer(true)]
        })
      )
      await data.use((sb) =>
        sb.createConnection("tools", {
          name: "mcp-tools",
          allow_private_network: true,
          security: { token: CANARY_MCP }
        })
      )
      const recording = await start(data.home, ["--record", cassettes])
      const tools = (await recording.list()).map((t) => t.name)
      assert.include(tools, "mcp-tools__add")
      const result = await recording.call("mcp-tools__add", { a: 20, b: 22 })
      assert.notStrictEqual(result.isError, true)
      await recording.close()
      const calls = mcp.state.calls.length
      await mcp.stop()
      assert.deepStrictEqual(canariesIn(cassettes), [])

      // the same connection name, now with a wrong token
      await data.use((sb) => sb.deleteConnection("mcp-tools"))
      await data.use((sb) =>
        sb.createConnection("tools", {
          name: "mcp-tools",
          allow_private_network: true,
          security: { token: "wrong-1234" }
        })
      )
      const replaying = await start(data.home, ["--replay", cassettes])
      assert.deepStrictEqual(
        (await replaying.list()).map((t) => t.name),
        tools
      )
      assert.deepStrictEqual(await replaying.call("mcp-tools__add", { b: 22, a: 20 }), result)
      const miss = await replaying.call("mcp-tools__add", { a: 1, b: 2 })
      assert.strictEqual(miss.isError, true)
      assert.include(JSON.stringify(miss.content), "cassette_miss")
      await replaying.close()
      assert.strictEqual(mcp.state.calls.length, calls)
      for (const canary of canaries) assert.notInclude(recording.stderr() + replaying.stderr(), canary)

      // the CLI's own tools command replays too (embedded), and a miss exits with the upstream code
      const cli = (args: ReadonlyArray<string>) =>
        spawnSync(process.execPath, [binPath, "--home", data.home, ...args], {
          encoding: "utf8",
          env: { PATH: process.env.PATH ?? "" }
        })
      const ok = cli([
        "--json",
        "tools",
        "call",
        "mcp-tools",
        "add",
        "--args",
        '{"a":20,"b":22}',
        "--replay",
        cassettes
      ])
      assert.strictEqual(ok.status, 0, ok.stderr)
      assert.deepStrictEqual(JSON.parse(ok.stdout), result)
      const bad = cli(["tools", "call", "mcp-tools", "add", "--args", '{"a":0,"b":0}', "--replay", cassettes])
      assert.notStrictEqual(bad.status, 0)
      assert.include(bad.stderr, "cassette_miss")
      const refused = cli(["--via", "daemon", "tools", "list", "mcp-tools", "--replay", cassettes])
      assert.strictEqual(refused.status === 0, false)
      assert.include(refused.stderr, "--replay runs the calls embedded")
    } finally {
      await mcp.stop().catch(() => undefined)
      data.cleanup()
    }
  }, 90_000)
})
