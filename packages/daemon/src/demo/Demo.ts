/**
 * `switchboard demo`: the whole loop with no outside account. It starts two loopback upstreams (a REST API and an
 * MCP server, each demanding its own credential), imports their connectors from `examples/demo/`, stores
 * credentials sealed in a throwaway data directory, connects, lists and calls MCP tools, proxies REST requests,
 * tests a connection with a real probe and shows the audit log — printing each step and what came back.
 */
import * as Proxy from "@switchboard/core/Proxy"
import * as Switchboard from "@switchboard/core/Switchboard"
import { ConnectionTests } from "@switchboard/core/Testing"
import * as Tools from "@switchboard/core/Tools"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Layers from "../Layers.ts"
import * as Upstreams from "./Upstreams.ts"

/** Where the demo's connector payloads live. */
export const examplesDir = Path.join(import.meta.dirname, "..", "..", "..", "..", "examples", "demo")

export interface DemoOptions {
  /** Keep the throwaway data directory and print where it is. */
  readonly keep: boolean
}

const readPayload = (file: string) =>
  Effect.sync(() => JSON.parse(Fs.readFileSync(Path.join(examplesDir, file), "utf8")) as unknown)

const secret = (prefix: string) => `${prefix}${randomBytes(12).toString("hex")}`

const textOf = (content: ReadonlyArray<Readonly<Record<string, unknown>>>) =>
  content.map((c) => (typeof c["text"] === "string" ? c["text"] : JSON.stringify(c))).join(" ")

let steps = 0
const step = (title: string) => Console.log(`\n${++steps}. ${title}`)
const show = (line: string) => Console.log(`   ${line}`)

/** The demo itself, against whatever Switchboard services are provided. */
export const loop = Effect.gen(function* () {
  steps = 0
  const sb = yield* Switchboard.Switchboard
  const proxy = yield* Proxy.Proxy
  const tools = yield* Tools.Tools

  yield* step("Start two upstreams on loopback, each demanding its own credential")
  const apiKey = secret("demo_key_")
  const token = secret("demo_token_")
  const notes = yield* Upstreams.notesApi(apiKey)
  const calc = yield* Upstreams.calculatorMcp(token)
  yield* show(`notes REST API   http://${notes.host}/v1   (wants X-API-Key)`)
  yield* show(`calculator MCP   http://${calc.host}/mcp  (wants Authorization: Bearer)`)

  yield* step("Import their connectors (Scalekit-style payloads from examples/demo/)")
  for (const file of ["notes-api.json", "calculator-mcp.json"]) {
    const c = yield* sb.createConnector(yield* readPayload(file))
    yield* show(`${c.name}: ${c.kind}, ${c.auth_patterns.map((p) => p.type).join(", ")}, proxy_url ${c.proxy_url}`)
  }

  yield* step("Store credentials at user scope (sealed at rest, shown masked)")
  const notesCred = yield* sb.setCredential("demo-notes", "user", { values: { api_key: apiKey, host: notes.host } })
  const calcCred = yield* sb.setCredential("demo-calculator", "user", { values: { token, host: calc.host } })
  yield* show(`demo-notes       ${JSON.stringify(notesCred.values)}`)
  yield* show(`demo-calculator  ${JSON.stringify(calcCred.values)}`)

  yield* step("Connect (loopback upstreams need allow_private_network: private targets are refused by default)")
  for (const [connector, name] of [
    ["demo-notes", "Notes"],
    ["demo-calculator", "Calculator"]
  ] as const) {
    const c = yield* sb.createConnection(connector, { name, allow_private_network: true })
    yield* show(`${c.name} (${c.id}): ${c.status}`)
  }

  yield* step("List the MCP server's tools through the Calculator connection")
  const listed = yield* tools.listTools("Calculator")
  for (const t of listed) yield* show(`${t.name}: ${t.description ?? ""}`)

  yield* step("Call a tool: add(2, 40)")
  const sum = yield* tools.callTool("Calculator", "add", { a: 2, b: 40 })
  yield* show(`result: ${textOf(sum.content)}${sum.isError === true ? " (error)" : ""}`)

  yield* step("Proxy REST requests through the Notes connection (the API key is injected, never seen here)")
  const post = yield* proxy.request("Notes", {
    method: "POST",
    path: "/notes",
    headers: { "content-type": "application/json" },
    body: Stream.make(new TextEncoder().encode(JSON.stringify({ text: "written through Switchboard" })))
  })
  yield* show(`POST /notes -> ${post.status} ${yield* post.body.pipe(Stream.decodeText(), Stream.mkString)}`)
  const get = yield* proxy.request("Notes", { method: "GET", path: "/notes" })
  yield* show(`GET  /notes -> ${get.status} ${yield* get.body.pipe(Stream.decodeText(), Stream.mkString)}`)

  const tests = yield* Effect.serviceOption(ConnectionTests)
  if (Option.isSome(tests)) {
    yield* step("Test the Notes connection with a real probe")
    const tested = yield* tests.value.test("Notes")
    yield* show(`${tested.test.strategy}: ${tested.test.ok ? "ok" : "failed"}, ${tested.test.detail}`)
    yield* show(
      `status ${tested.status}, tested at ${tested.last_tested_at}, auth ${JSON.stringify(tested.auth_config)}`
    )
  }

  yield* step("What the upstreams saw")
  yield* show(`notes API: ${notes.seen.authorized} requests with the right key, ${notes.seen.refused} refused`)
  yield* show(`calculator MCP: ${calc.seen.authorized} requests with the right token, ${calc.seen.refused} refused`)

  yield* step("The audit log (newest first; never secrets or bodies)")
  const audit = yield* sb.listAudit({ limit: 8 })
  for (const r of audit.data) {
    yield* show(`${r.action.padEnd(18)} ${r.outcome.padEnd(8)} ${r.tool ?? r.path ?? r.target ?? ""}`)
  }
  return { notes: notes.seen, calculator: calc.seen }
}).pipe(Effect.scoped)

/** Run the demo on a throwaway data directory (sealed SQLite, its own master key file). */
export const run = (options: DemoOptions) =>
  Effect.gen(function* () {
    const home = yield* Effect.acquireRelease(
      Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "switchboard-demo-"))),
      (dir) => (options.keep ? Effect.void : Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
    )
    yield* Console.log(`Switchboard demo — a throwaway data directory: ${home}`)
    const services = Layers.withCalls(Layers.embedded({ home, env: {} }), { allowPrivateNetwork: false })
    const seen = yield* loop.pipe(Effect.provide(Layer.fresh(services)))
    yield* Console.log(
      options.keep
        ? `\nDone. The data directory is kept: try  switchboard --home ${home} connection list`
        : "\nDone. The throwaway data directory is removed; run with --keep to look around in it."
    )
    return seen
  }).pipe(Effect.scoped)
