/**
 * A Promise facade over the whole embedded hub, for programs that do not use Effect: the Switchboard service (as
 * `createSwitchboard` in core), plus the calling services wired on the real adapters, which core cannot wire: proxy
 * requests, MCP tools (list, call, and tool pinning), connection tests and explain (dry runs).
 *
 * The stores are the data directory's (the same the CLI and the daemon use), or a store layer given (memory for
 * throwaway runs and tests). Every call runs on one `ManagedRuntime`; a failure rejects with the typed error itself
 * (`code`, `status`, `message`; `Errors.toErrorBody` gives the API's JSON shape), and `as(principal)` gives the same
 * hub acting for someone else.
 */
import type { SealError, StoreError } from "@switchboard/core/Errors"
import * as Facade from "@switchboard/core/Facade"
import type { Explanation } from "@switchboard/core/Explain"
import * as Explain from "@switchboard/core/Explain"
import type { CallOptions, McpTool, McpToolResult } from "@switchboard/core/McpUpstream"
import * as Principal from "@switchboard/core/Principal"
import * as Proxy from "@switchboard/core/Proxy"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Testing from "@switchboard/core/Testing"
import * as ToolPins from "@switchboard/core/ToolPins"
import * as Tools from "@switchboard/core/Tools"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Stream from "effect/Stream"
import type { DaemonError } from "./DaemonError.ts"
import * as Layers from "./Layers.ts"

/** One proxied request: `path` is relative to the connector's base URL. */
export interface HubRequest {
  /** GET when absent. */
  readonly method?: string | undefined
  readonly path: string
  readonly query?: Readonly<Record<string, string | ReadonlyArray<string>>> | undefined
  readonly headers?: Readonly<Record<string, string | ReadonlyArray<string> | undefined>> | undefined
  /** The request body: a string is sent as UTF-8. */
  readonly body?: string | Uint8Array | undefined
}

/** The upstream's answer, its body read whole. */
export interface HubResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
  /** The body as UTF-8 text. */
  readonly text: () => string
  /** The body parsed as JSON (throws a SyntaxError when it is not JSON). */
  readonly json: () => unknown
}

/** The hub: the Switchboard methods, the calling services, `as` and `dispose`. */
export interface Hub extends Facade.Methods {
  /** Send a request through a connection (credentials injected, the SSRF guard applied). */
  readonly proxy: (connection: string, request: HubRequest) => Promise<HubResponse>
  /** The MCP tools of a connection (its pinned manifest applied), and tool pinning. */
  readonly tools: {
    readonly list: (connection: string) => Promise<ReadonlyArray<McpTool>>
    readonly call: (
      connection: string,
      tool: string,
      args?: Readonly<Record<string, unknown>>,
      options?: CallOptions
    ) => Promise<McpToolResult>
    /** The connection's pin against what its server offers now. */
    readonly pins: (connection: string) => Promise<ToolPins.PinsView>
    /** Approve the current manifest (or one tool of it) as the new pin. */
    readonly approve: (connection: string, input?: ToolPins.ApproveInput) => Promise<ToolPins.PinsView>
  }
  /** Test a connection's credentials against its upstream (the connector's test, or the default probes). */
  readonly test: (connection: string) => Promise<Testing.TestedConnection>
  /** What a proxied request would do, without sending it. */
  readonly explain: (connection: string, query?: unknown) => Promise<Explanation>
  /** The same hub acting as another principal. */
  readonly as: (principal: Principal.Principal) => Hub
  /** The principal calls run as. */
  readonly principal: Principal.Principal
  /** Close the upstream connections and the stores. */
  readonly dispose: () => Promise<void>
}

export interface HubOptions<E = never> {
  /** Store adapters (e.g. the memory store); the data directory's store when absent. */
  readonly layer?: Layer.Layer<Facade.StoreServices, E> | undefined
  /** The data directory (`--home`); `$SWITCHBOARD_HOME` or the XDG default when absent. Unused with `layer`. */
  readonly home?: string | undefined
  /** The environment (master key, data directory, store URL); `process.env` when absent. */
  readonly env?: Layers.Env | undefined
  /** Allow loopback and private-network upstreams (the local-first switch); cloud metadata stays refused. */
  readonly allowPrivateNetwork?: boolean | undefined
  /** Who calls run as: this machine's user as local admin (the CLI's principal) by default. */
  readonly principal?: Principal.Principal | undefined
}

type HubServices =
  | Switchboard.Switchboard
  | Proxy.Proxy
  | Tools.Tools
  | ToolPins.ToolPinning
  | Testing.ConnectionTests
  | Explain.Explainer

/** The layer behind a hub: the Switchboard on its stores with the calling services over the real adapters. */
export const hubLayer = <E>(
  options: HubOptions<E>
): Layer.Layer<HubServices, E | StoreError | SealError | DaemonError> => {
  const switchboard: Layer.Layer<Switchboard.Switchboard, E | StoreError | SealError | DaemonError> =
    options.layer === undefined
      ? Layers.embedded({ home: options.home, env: options.env })
      : // provideMerge keeps the store ports in context: `Tools` finds the optional `ToolPins` store there.
        Switchboard.layer.pipe(Layer.provideMerge(options.layer))
  const calling = { allowPrivateNetwork: options.allowPrivateNetwork ?? false }
  return Layer.mergeAll(
    Layer.mergeAll(Proxy.layer, Tools.layer).pipe(Layer.provide(Layers.upstreamLayer(calling))),
    Layers.testingLayer(calling),
    Layers.explainLayer(calling)
  ).pipe(Layer.provideMerge(switchboard))
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

const responseOf = (status: number, headers: Readonly<Record<string, string>>, body: Uint8Array): HubResponse => ({
  status,
  headers,
  body,
  text: () => decoder.decode(body),
  json: () => JSON.parse(decoder.decode(body)) as unknown
})

/** Start an embedded hub and return its Promise facade. */
export const createHub = <E = never>(options: HubOptions<E> = {}): Hub => {
  const runtime = ManagedRuntime.make(hubLayer(options))
  const bind = (principal: Principal.Principal): Hub => {
    const run = Facade.runnerFor(runtime, principal)
    const proxy = (connection: string, request: HubRequest) =>
      run(
        Effect.gen(function* () {
          const service = yield* Proxy.Proxy
          const body =
            request.body === undefined
              ? undefined
              : Stream.make(typeof request.body === "string" ? encoder.encode(request.body) : request.body)
          const response = yield* service.request(connection, {
            method: (request.method ?? "GET").toUpperCase(),
            path: request.path,
            query: request.query,
            headers: request.headers,
            body
          })
          const bytes = yield* Stream.mkUint8Array(response.body)
          return responseOf(response.status, response.headers, bytes)
        })
      )
    return {
      ...Facade.switchboardMethods(run),
      proxy,
      tools: {
        list: (connection) => run(Effect.flatMap(Effect.service(Tools.Tools), (t) => t.listTools(connection))),
        call: (connection, tool, args, callOptions) =>
          run(Effect.flatMap(Effect.service(Tools.Tools), (t) => t.callTool(connection, tool, args, callOptions))),
        pins: (connection) => run(Effect.flatMap(Effect.service(ToolPins.ToolPinning), (p) => p.show(connection))),
        approve: (connection, input) =>
          run(Effect.flatMap(Effect.service(ToolPins.ToolPinning), (p) => p.approve(connection, input)))
      },
      test: (connection) => run(Effect.flatMap(Effect.service(Testing.ConnectionTests), (t) => t.test(connection))),
      explain: (connection, query) =>
        run(Effect.flatMap(Effect.service(Explain.Explainer), (e) => e.explain(connection, query))),
      principal,
      as: bind,
      dispose: () => runtime.dispose()
    }
  }
  return bind(options.principal ?? (options.layer === undefined ? Layers.localPrincipal() : Principal.local("local")))
}
