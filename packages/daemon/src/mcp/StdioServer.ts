/**
 * `switchboard mcp`: the gateway on the MCP SDK's low-level `Server` over stdio. The low-level server passes
 * upstream JSON Schemas through as they are (`McpServer` would insist on zod). stdout is the protocol: every
 * log line goes to stderr. Each request runs as an Effect in this fiber's context; the client's cancellation
 * (`extra.signal`) interrupts it, which cancels the upstream call. A client progress token turns upstream
 * progress into `notifications/progress`. The server stops when stdin ends or the transport closes, and only
 * then are the services released (upstream sessions closed, local programs stopped, the store closed).
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js"
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js"
import {
  CallToolRequestSchema,
  type CallToolResult,
  ListToolsRequestSchema,
  type Tool
} from "@modelcontextprotocol/sdk/types.js"
import * as Principal from "@switchboard/core/Principal"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Stream from "effect/Stream"
import type { Readable, Writable } from "node:stream"
import * as Layers from "../Layers.ts"
import * as Gateway from "./Gateway.ts"
import type { Progress } from "./Protocol.ts"

export const instructions =
  "Switchboard offers the tools of your connected services. Each tool is named <connection>__<tool>; a REST " +
  "connection has one <connection>__request tool for HTTP requests. Switchboard adds the credentials: never " +
  "ask the user for secrets. switchboard__list_connections shows which connections are usable and why not; " +
  "switchboard__auth_link says how to authorize one."

export interface ServeOptions {
  readonly version: string
  /** stdin and stdout of the process unless given (tests). */
  readonly stdin?: Readable | undefined
  readonly stdout?: Writable | undefined
}

/** Serve the gateway on stdio until stdin ends or the client goes away. */
export const serve = Effect.fn("McpServer.serve")(function* (gateway: Gateway.Gateway, options: ServeOptions) {
  const stdin = options.stdin ?? process.stdin
  const stdout = options.stdout ?? process.stdout
  const context = yield* Effect.context<never>()
  const run = Effect.runPromiseWith(context)

  const server = new Server(
    { name: "switchboard", title: "Switchboard", version: options.version },
    { capabilities: { tools: { listChanged: true } }, instructions }
  )
  server.setRequestHandler(ListToolsRequestSchema, (_request, extra) =>
    run(
      Effect.map(gateway.listTools, (tools) => ({ tools: tools as Array<Tool> })),
      { signal: extra.signal }
    )
  )
  server.setRequestHandler(CallToolRequestSchema, (request, extra) => {
    const token = request.params._meta?.progressToken
    // Progress notifications are written in order, and all of them before the result: the client may stop
    // listening for progress once the result is in.
    let sent: Promise<void> = Promise.resolve()
    const onProgress =
      token === undefined
        ? undefined
        : (p: Progress) => {
            sent = sent
              .then(() =>
                extra.sendNotification({
                  method: "notifications/progress",
                  params: {
                    progressToken: token,
                    progress: p.progress,
                    ...(p.total === undefined ? {} : { total: p.total }),
                    ...(p.message === undefined ? {} : { message: p.message })
                  }
                })
              )
              .catch(() => {})
          }
    return run(
      Effect.map(
        gateway.callTool(request.params.name, request.params.arguments ?? {}, { onProgress }),
        (result) => result as CallToolResult
      ),
      { signal: extra.signal }
    ).then(async (result) => {
      await sent
      // Let the last progress notification leave in its own write: SDK clients handle a response at once but a
      // notification a microtask later, and drop progress that arrives in the same chunk as the result.
      if (token !== undefined) await new Promise<void>((resolve) => setImmediate(resolve))
      return result
    })
  })
  // oxlint-disable-next-line unicorn/prefer-add-event-listener -- the SDK's callbacks are properties
  server.onerror = (error) => {
    run(Effect.logWarning(`MCP protocol error: ${error.message}`)).catch(() => {})
  }

  yield* Stream.runForEach(gateway.changes, () =>
    Effect.ignore(Effect.tryPromise(() => server.sendToolListChanged()))
  ).pipe(Effect.forkScoped)

  yield* Effect.acquireRelease(
    Effect.promise(() => server.connect(new StdioServerTransport(stdin, stdout))),
    () => Effect.promise(() => server.close().catch(() => {}))
  )

  // StdioServerTransport does not watch for the end of stdin: without this the services are never released.
  yield* Effect.callback<void>((resume) => {
    const done = () => resume(Effect.void)
    stdin.once("end", done)
    stdin.once("close", done)
    stdout.once("error", done)
    // oxlint-disable-next-line unicorn/prefer-add-event-listener -- the SDK's callbacks are properties
    server.onclose = done
    return Effect.sync(() => {
      stdin.off("end", done)
      stdin.off("close", done)
      stdout.off("error", done)
    })
  })
})

export interface RunOptions extends Gateway.Options {
  readonly version: string
  /** The Switchboard and its calling services: embedded, or through the daemon (`Access.calls`). */
  readonly services: Layer.Layer<Layers.Services, unknown>
}

/**
 * The whole `switchboard mcp`: build the services, serve until stdin ends, release everything. Logs go to
 * stderr, and embedded calls run as this machine's local user (as the daemon's do).
 */
export const run = (options: RunOptions) =>
  Effect.scoped(
    Effect.gen(function* () {
      const services = yield* Layer.build(options.services)
      const gateway = yield* Gateway.make(options).pipe(Effect.provideContext(services))
      yield* Effect.logInfo("switchboard mcp: serving on stdio")
      yield* serve(gateway, { version: options.version })
    })
  ).pipe(
    Effect.provideService(Principal.CurrentPrincipal, Layers.localPrincipal()),
    Effect.provideService(Logger.LogToStderr, true)
  )
