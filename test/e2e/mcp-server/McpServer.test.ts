/**
 * `switchboard mcp` end to end, as an IDE runs it: the SDK's `Client` over `StdioClientTransport` spawns the
 * real binary on a data directory holding MCP connections (a streamable HTTP server on loopback, two whose
 * names collide, `@modelcontextprotocol/server-everything` and a test program over stdio, a dead one, one
 * waiting for credentials) and a REST connection to a loopback API. Covers initialize, listing, calls,
 * progress, cancellation, errors as results, the request tool, the management tools, filters, a hanging
 * upstream, list_changed (a new connection, an upstream's new tool), the daemon route, and that stdout carries
 * nothing but protocol while a canary secret never shows up in any message or on stderr.
 */
import { getDefaultEnvironment } from "@modelcontextprotocol/sdk/client/stdio.js"
import * as ToolNames from "@switchboard/core/ToolNames"
import * as Effect from "effect/Effect"
import { spawnSync } from "node:child_process"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { HttpServers, Programs } from "../../support/mcp/index.ts"
import {
  binPath,
  type DataDir,
  dataDir,
  eventually,
  listUntil,
  type RestServer,
  type Session,
  start,
  startBlackhole,
  startRest,
  textOf
} from "./harness.ts"

const CANARY = "sb-canary-Mcp7Qx2Lw9Rk4tZ8"

const bearer = [
  {
    type: "BEARER",
    display_name: "Token",
    fields: [{ field_name: "token", label: "Token", input_type: "password", required: true }]
  }
]

/** Stdout held only protocol, and the canary appears in no message and not on stderr. */
const assertClean = (session: Session) => {
  assert.deepStrictEqual(
    session.errors.map((e) => e.message),
    [],
    "no transport errors (a stray line on stdout would be one)"
  )
  assert.isAbove(session.messages.length, 0)
  assert.notInclude(JSON.stringify(session.messages), CANARY)
  assert.notInclude(session.stderr(), CANARY)
}

describe("switchboard mcp (embedded)", () => {
  let data: DataDir
  let remote: HttpServers.HttpMcpServer
  let rest: RestServer
  let session: Session
  let teamA = ""
  let teamDotA = ""

  beforeAll(async () => {
    data = dataDir()
    remote = await HttpServers.startStreamable()
    rest = await startRest(CANARY)
    const dead = await HttpServers.closedPort()
    const ids = await data.use((sb) =>
      Effect.gen(function* () {
        yield* sb.createConnector({
          name: "test-mcp",
          display_name: "Test MCP",
          kind: "mcp",
          proxy_url: remote.url,
          auth_patterns: bearer
        })
        yield* sb.createConnection("test-mcp", {
          name: "remote",
          security: { token: CANARY },
          allow_private_network: true
        })
        const a = yield* sb.createConnection("test-mcp", {
          name: "team a",
          security: { token: "team-token" },
          allow_private_network: true
        })
        const b = yield* sb.createConnection("test-mcp", {
          name: "team.a",
          security: { token: "team-token" },
          allow_private_network: true
        })
        yield* sb.createConnector({
          name: "everything",
          display_name: "Everything",
          kind: "mcp",
          command: { ...Programs.everything(), env: { SB_EVERYTHING_TOKEN: "{{token}}" } },
          auth_patterns: bearer
        })
        yield* sb.createConnection("everything", { name: "everything", security: { token: "everything-token" } })
        const program = Programs.testProgram()
        yield* sb.createConnector({
          name: "local-program",
          display_name: "Local program",
          kind: "mcp",
          command: { program: program.program, args: program.args, env: { SB_TEST_TOKEN: "{{token}}" } },
          auth_patterns: bearer
        })
        yield* sb.createConnection("local-program", { name: "local", security: { token: CANARY } })
        yield* sb.createConnector({
          name: "acme",
          display_name: "Acme API",
          proxy_url: rest.url,
          auth_patterns: bearer
        })
        yield* sb.createConnection("acme", { name: "acme", security: { token: CANARY }, allow_private_network: true })
        yield* sb.createConnector({
          name: "dead-mcp",
          display_name: "Dead",
          kind: "mcp",
          proxy_url: `http://127.0.0.1:${dead}/mcp`
        })
        yield* sb.createConnection("dead-mcp", { name: "dead", allow_private_network: true })
        yield* sb.createConnector({
          name: "needs-token",
          display_name: "Needs a token",
          kind: "mcp",
          proxy_url: "https://mcp.example.com/mcp",
          auth_patterns: bearer
        })
        yield* sb.createConnection("needs-token", { name: "pending" })
        return { a: a.id, b: b.id }
      })
    )
    teamA = ids.a
    teamDotA = ids.b
    session = await start(data.home)
  })

  afterAll(async () => {
    await session?.close()
    await remote?.stop()
    await rest?.close()
    data?.cleanup()
  })

  it("initializes without contacting any upstream", () => {
    assert.strictEqual(session.client.getServerVersion()?.name, "switchboard")
    assert.deepStrictEqual(session.client.getServerCapabilities()?.tools, { listChanged: true })
    assert.include(session.client.getInstructions() ?? "", "<connection>__<tool>")
    assert.strictEqual(remote.requests.length, 0)
    assert.strictEqual(rest.requests.length, 0)
    assert.include(session.stderr(), "switchboard mcp: serving on stdio")
  })

  it("lists every active connection's tools under <connection>__<tool>, schemas and annotations as given", async () => {
    const tools = await listUntil(session, (names) => names.includes("everything__get-sum"))
    const names = tools.map((t) => t.name)
    for (const name of [
      "remote__echo",
      "remote__add",
      "remote__slow",
      "remote__fail",
      "remote__weather",
      "everything__echo",
      "everything__trigger-long-running-operation",
      "local__whoami",
      "local__crash",
      "acme__request",
      "switchboard__list_connectors",
      "switchboard__list_connections",
      "switchboard__auth_link"
    ]) {
      assert.include(names, name)
    }
    for (const name of names) assert.isTrue(ToolNames.isValid(name), name)
    assert.strictEqual(new Set(names).size, names.length)
    assert.isFalse(names.some((n) => n.startsWith("dead__") || n.startsWith("pending__")))
    const add = tools.find((t) => t.name === "remote__add")
    assert.deepStrictEqual(add?.inputSchema, {
      type: "object",
      properties: { a: { type: "number" }, b: { type: "number" } },
      required: ["a", "b"],
      additionalProperties: false
    })
    assert.strictEqual(add?.description, "Add two numbers")
    assert.deepStrictEqual(tools.find((t) => t.name === "remote__weather")?.outputSchema?.required, [
      "city",
      "temperature"
    ])
    const everythingEcho = tools.find((t) => t.name === "everything__echo")
    assert.isDefined(everythingEcho?.annotations ?? everythingEcho?.description)
    const connections = tools.find((t) => t.name === "switchboard__list_connections")
    assert.include(connections?.description ?? "", "dead is unavailable (upstream_unreachable")
    assert.include(connections?.description ?? "", "pending needs authorization (pending_auth)")
  })

  it("two connections whose names collide get stable, distinct names that reach the right one", async () => {
    const names = (await session.list()).map((t) => t.name)
    const a = `team_a__echo_${ToolNames.shortHash(`${teamA}\u0000echo`)}`
    const b = `team_a__echo_${ToolNames.shortHash(`${teamDotA}\u0000echo`)}`
    assert.include(names, a)
    assert.include(names, b)
    assert.isFalse(names.includes("team_a__echo"))
    const before = remote.state.calls.length
    assert.strictEqual(textOf(await session.call(a, { text: "from a" })), "from a")
    assert.strictEqual(textOf(await session.call(b, { text: "from b" })), "from b")
    assert.deepStrictEqual(
      remote.state.calls.slice(before).map((c) => c.args),
      [{ text: "from a" }, { text: "from b" }]
    )
  })

  it("calls tools: text, structured content, tool errors and invalid arguments as isError results", async () => {
    assert.strictEqual(textOf(await session.call("remote__add", { a: 2, b: 3 })), "5")
    const weather = await session.call("remote__weather", { city: "Oslo" })
    assert.deepStrictEqual(weather.structuredContent, { city: "Oslo", temperature: 21 })
    const failed = await session.call("remote__fail")
    assert.strictEqual(failed.isError, true)
    assert.strictEqual(textOf(failed), "the tool failed on purpose")
    const invalid = await session.call("remote__add", { a: "two", b: 3 })
    assert.strictEqual(invalid.isError, true)
    assert.include(textOf(invalid), "a: must be number")
    assert.include(textOf(invalid), "(validation_failed)")
    assert.strictEqual(textOf(await session.call("everything__get-sum", { a: 2, b: 3 })), "The sum of 2 and 3 is 5.")
    const unknown = await session.call("remote__nope")
    assert.strictEqual(unknown.isError, true)
    assert.include(textOf(unknown), "unknown tool remote__nope")
  })

  it("an upstream that dies mid-call is an isError result with its stderr scrubbed; the next call restarts it", async () => {
    assert.strictEqual(textOf(await session.call("local__echo", { text: "before" })), "before")
    const crashed = await session.call("local__crash")
    assert.strictEqual(crashed.isError, true)
    assert.include(textOf(crashed), "(upstream_unreachable)")
    assert.include(textOf(crashed), "token was <redacted>")
    assert.strictEqual(textOf(await session.call("local__echo", { text: "after" })), "after")
  })

  it("passes progress through, from an HTTP upstream and from a stdio one", async () => {
    const seen: Array<number> = []
    const result = await session.client.callTool(
      { name: "remote__slow", arguments: { steps: 3, delay_ms: 10 } },
      undefined,
      { onprogress: (p) => seen.push(p.progress) }
    )
    assert.strictEqual(textOf(result as never), "done after 3 steps")
    assert.deepStrictEqual(seen, [1, 2, 3])
    const fromEverything: Array<number> = []
    await session.client.callTool(
      { name: "everything__trigger-long-running-operation", arguments: { duration: 0.3, steps: 3 } },
      undefined,
      { onprogress: (p) => fromEverything.push(p.progress) }
    )
    assert.deepStrictEqual(fromEverything, [1, 2, 3])
  })

  it("cancelling a call cancels it upstream, and the server carries on", async () => {
    const before = remote.state.calls.length
    const cancelledBefore = remote.state.cancelled.length
    const controller = new AbortController()
    const call = session.client
      .callTool({ name: "remote__slow", arguments: { steps: 100, delay_ms: 100 } }, undefined, {
        signal: controller.signal
      })
      .then(
        () => "finished",
        () => "aborted"
      )
    await eventually("the upstream started the call", () => remote.state.calls.length > before)
    controller.abort()
    assert.strictEqual(await call, "aborted")
    await eventually("the upstream saw the cancellation", () => remote.state.cancelled.length > cancelledBefore)
    assert.strictEqual(textOf(await session.call("remote__echo", { text: "still here" })), "still here")
  })

  it("the request tool calls the REST API through the proxy, with the connection's credential", async () => {
    const before = rest.requests.length
    const listed = await session.call("acme__request", { path: "/items", query: { limit: 2 } })
    assert.isUndefined(listed.isError)
    assert.deepStrictEqual(listed.structuredContent?.body, { items: ["a", "b"], limit: "2" })
    assert.strictEqual(listed.structuredContent?.status, 200)
    const posted = await session.call("acme__request", { method: "POST", path: "/echo", body: { hello: "world" } })
    assert.strictEqual(posted.structuredContent?.status, 201)
    assert.deepStrictEqual(posted.structuredContent?.body, { received: { hello: "world" } })
    const missing = await session.call("acme__request", { path: "/nothing" })
    assert.strictEqual(missing.isError, true)
    assert.strictEqual(missing.structuredContent?.status, 404)
    const big = await session.call("acme__request", { path: "/big" })
    assert.strictEqual(big.structuredContent?.truncated, true)
    assert.strictEqual(String(big.structuredContent?.body).length, 64 * 1024)
    assert.include(String(big.structuredContent?.note), "only the first 65536")
    const escape = await session.call("acme__request", { path: "/../../etc/passwd" })
    assert.strictEqual(escape.isError, true)
    assert.include(textOf(escape), "climbs above")
    const sent = rest.requests.slice(before)
    assert.strictEqual(sent.length, 4)
    assert.isTrue(sent.every((r) => r.authorized))
  })

  it("management tools: connectors, connections with status, how to authorize", async () => {
    const connectors = await session.call("switchboard__list_connectors")
    const names = (connectors.structuredContent as { connectors: Array<{ name: string }> }).connectors.map(
      (c) => c.name
    )
    for (const name of ["test-mcp", "everything", "acme", "dead-mcp", "needs-token"]) assert.include(names, name)
    const listed = await session.call("switchboard__list_connections")
    const rows = listed.structuredContent?.connections as Array<{ name: string; status: string; tools: any }>
    const row = (name: string) => rows.find((r) => r.name === name)
    assert.strictEqual(row("remote")?.tools.state, "ready")
    assert.include(row("remote")?.tools.tools, "remote__echo")
    assert.deepStrictEqual(row("acme")?.tools, { state: "ready", tools: ["acme__request"] })
    assert.strictEqual(row("dead")?.tools.state, "unavailable")
    assert.strictEqual(row("dead")?.tools.code, "upstream_unreachable")
    assert.strictEqual(row("pending")?.status, "pending_auth")
    assert.strictEqual(row("pending")?.tools.state, "inactive")
    const auth = await session.call("switchboard__auth_link", { connection: "pending" })
    assert.strictEqual(auth.structuredContent?.authorized, false)
    assert.strictEqual(auth.structuredContent?.command, "switchboard cred set needs-token")
    const active = await session.call("switchboard__auth_link", { connection: "remote" })
    assert.strictEqual(active.structuredContent?.authorized, true)
    const missing = await session.call("switchboard__auth_link", { connection: "nope" })
    assert.strictEqual(missing.isError, true)
    assert.include(textOf(missing), "(connection_not_found)")
  })

  it("--connection and --tools narrow what is offered", async () => {
    const narrow = await start(data.home, [
      "--connection",
      "remote",
      "--connection",
      "acme",
      "--tools",
      "remote__e*,acme__*",
      "--tools",
      "switchboard__list_connections"
    ])
    try {
      const names = (await narrow.list()).map((t) => t.name).sort()
      assert.deepStrictEqual(names, ["acme__request", "remote__echo", "switchboard__list_connections"])
      const refused = await narrow.call("remote__add", { a: 1, b: 2 })
      assert.strictEqual(refused.isError, true)
      assert.include(textOf(refused), "unknown tool remote__add")
      const rows = (await narrow.call("switchboard__list_connections")).structuredContent?.connections as Array<{
        name: string
      }>
      assert.deepStrictEqual(rows.map((r) => r.name).sort(), ["acme", "remote"])
      assertClean(narrow)
    } finally {
      await narrow.close()
    }
  })

  it("through the daemon: the same tools and calls", async () => {
    const env = { ...getDefaultEnvironment() }
    const daemon = (...args: Array<string>) =>
      spawnSync(process.execPath, [binPath, "--home", data.home, "daemon", ...args], { env, encoding: "utf8" })
    const started = daemon("start", "--detach")
    assert.strictEqual(started.status, 0, started.stderr)
    try {
      const viaDaemon = await start(data.home, [], { global: ["--via", "daemon"] })
      try {
        const names = (await listUntil(viaDaemon, (n) => n.includes("remote__echo"))).map((t) => t.name)
        assert.include(names, "acme__request")
        assert.strictEqual(textOf(await viaDaemon.call("remote__echo", { text: "via the daemon" })), "via the daemon")
        const items = await viaDaemon.call("acme__request", { path: "/items" })
        assert.deepStrictEqual(items.structuredContent?.body, { items: ["a", "b"], limit: null })
        assertClean(viaDaemon)
      } finally {
        await viaDaemon.close()
      }
    } finally {
      const stopped = daemon("stop")
      assert.strictEqual(stopped.status, 0, stopped.stderr)
    }
  }, 90_000)

  it("stdout carried nothing but protocol, and the canary never appeared in a message or on stderr", () => {
    assertClean(session)
  })
})

describe("switchboard mcp: changes and a hanging upstream", () => {
  let data: DataDir
  let upstream: HttpServers.HttpMcpServer
  let hanging: Awaited<ReturnType<typeof startBlackhole>>
  let session: Session

  beforeAll(async () => {
    data = dataDir()
    upstream = await HttpServers.startStreamable()
    hanging = await startBlackhole()
    await data.use((sb) =>
      Effect.gen(function* () {
        yield* sb.createConnector({ name: "srv", display_name: "Server", kind: "mcp", proxy_url: upstream.url })
        yield* sb.createConnection("srv", { name: "watched", allow_private_network: true })
        yield* sb.createConnector({ name: "hangs", display_name: "Hangs", kind: "mcp", proxy_url: hanging.url })
        yield* sb.createConnection("hangs", { name: "slow", allow_private_network: true })
      })
    )
    session = await start(data.home, ["--list-timeout-ms", "500", "--poll-interval-ms", "100"])
  })

  afterAll(async () => {
    await session?.close()
    await upstream?.stop()
    await hanging?.close()
    data?.cleanup()
  })

  it("a hanging upstream does not hold up the list; it is reported as loading", async () => {
    assert.strictEqual(upstream.requests.length, 0, "nothing contacted before the first list")
    assert.strictEqual(hanging.accepted(), 0)
    const tools = await listUntil(session, (names) => names.includes("watched__echo"))
    assert.isFalse(tools.some((t) => t.name.startsWith("slow__")))
    const rows = (await session.call("switchboard__list_connections")).structuredContent?.connections as Array<{
      name: string
      tools: { state: string }
    }>
    assert.strictEqual(rows.find((r) => r.name === "slow")?.tools.state, "loading")
    assert.include(
      tools.find((t) => t.name === "switchboard__list_connections")?.description ?? "",
      "slow is still loading"
    )
  })

  it("a connection added while the server runs: list_changed, then its tools", async () => {
    await session.list()
    const before = session.listChanged()
    await data.use((sb) => sb.createConnection("srv", { name: "added later", allow_private_network: true }))
    await eventually("list_changed arrived", () => session.listChanged() > before)
    const names = (await listUntil(session, (n) => n.includes("added_later__echo"))).map((t) => t.name)
    assert.include(names, "watched__echo")
  })

  it("an upstream that adds a tool: list_changed, then the new tool, which can be called", async () => {
    await session.list()
    const before = session.listChanged()
    await upstream.addTool("brand_new")
    await eventually("list_changed arrived", () => session.listChanged() > before)
    const names = (await listUntil(session, (n) => n.includes("watched__brand_new"))).map((t) => t.name)
    assert.include(names, "added_later__brand_new")
    assert.strictEqual(textOf(await session.call("watched__brand_new")), "brand_new ran")
    assertClean(session)
  })
})
