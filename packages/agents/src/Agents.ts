/**
 * What the four framework integrations share: a Switchboard to take tools from (a `ManagedRuntime` or a Layer
 * of the Switchboard services, embedded or through the daemon client), the tools on offer with the MCP server's
 * names and schemas (core's `Toolset`), and calls that run as Promises for the frameworks, with the framework's
 * AbortSignal interrupting the call (which cancels it upstream).
 *
 * This lives outside `@switchboard/core` because the frameworks' execute callbacks are Promise code (core bans
 * `async`) and their packages pull Node built-ins into the type graph; core stays free of both.
 */
import type { SwitchboardError } from "@switchboard/core/Errors"
import * as Principal from "@switchboard/core/Principal"
import type * as Proxy from "@switchboard/core/Proxy"
import type * as Switchboard from "@switchboard/core/Switchboard"
import type * as Tools from "@switchboard/core/Tools"
import * as Toolset from "@switchboard/core/Toolset"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"

/** The services a Switchboard offers tools with (what `Layers.withCalls` and `Client.layerRemoteCalls` give). */
export type Services = Switchboard.Switchboard | Proxy.Proxy | Tools.Tools

/**
 * Where the tools come from: a runtime you own (you dispose it), or a Layer (a runtime is made for it and kept
 * for the life of the process; pass a runtime to control that).
 */
export type Source<E = unknown> = ManagedRuntime.ManagedRuntime<Services, E> | Layer.Layer<Services, E>

export interface Options {
  /** Offer only these connections (names or ids); all active ones when absent or empty. */
  readonly connections?: ReadonlyArray<string> | undefined
  /** Offer only tools whose name matches one of these (`*` is a wildcard); all when absent or empty. */
  readonly tools?: ReadonlyArray<string> | undefined
  /** Who the calls run as; the runtime's current principal (the local admin) by default. */
  readonly principal?: Principal.Principal | undefined
  /** The response body size the request tools of REST connections return at most (64 KiB by default). */
  readonly maxBodyBytes?: number | undefined
}

/** A tool result that reports an error (`isError`), or a call Switchboard could not make. */
export class SwitchboardToolError extends Error {
  override readonly name = "SwitchboardToolError"
  /** The tool's name. */
  readonly tool: string
  /** The result as the MCP server would return it. */
  readonly result: Toolset.CallResult
  constructor(tool: string, result: Toolset.CallResult) {
    super(Toolset.textOf(result) || `the tool ${tool} failed`)
    this.tool = tool
    this.result = result
  }
}

/** One tool, framework-neutral. */
export interface AgentTool {
  readonly name: string
  readonly description: string
  readonly inputSchema: Readonly<Record<string, unknown>>
  readonly outputSchema?: Readonly<Record<string, unknown>> | undefined
  /** The MCP definition as the MCP server lists it. */
  readonly definition: Toolset.ToolDefinition
  /** Call the tool. Never rejects for a failed call: that is an `isError` result. Aborting cancels the call. */
  readonly call: (args: unknown, signal?: AbortSignal) => Promise<Toolset.CallResult>
}

const runtimes = new WeakMap<object, ManagedRuntime.ManagedRuntime<Services, unknown>>()

const runtimeOf = <E>(source: Source<E>): ManagedRuntime.ManagedRuntime<Services, unknown> => {
  if (ManagedRuntime.isManagedRuntime(source)) return source
  if (!Layer.isLayer(source)) throw new TypeError("expected a ManagedRuntime or a Layer of the Switchboard services")
  let runtime = runtimes.get(source)
  if (runtime === undefined) {
    runtime = ManagedRuntime.make(source as Layer.Layer<Services, unknown>)
    runtimes.set(source, runtime)
  }
  return runtime
}

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** A description for every tool: the upstream's, else its title, else what it is. */
const describe = (definition: Toolset.ToolDefinition, entry: Toolset.Entry): string =>
  definition.description ?? definition.title ?? `${entry.tool} of the connection ${entry.connectionName}`

/**
 * The tools on offer now, named and described as the MCP server lists them. Connections whose server cannot be
 * listed are left out (see `Toolset.make`).
 */
export const listTools = async <E>(source: Source<E>, options: Options = {}): Promise<ReadonlyArray<AgentTool>> => {
  const runtime = runtimeOf(source)
  const withPrincipal = <A, E2, R>(effect: Effect.Effect<A, E2, R>) =>
    options.principal === undefined
      ? effect
      : Effect.provideService(effect, Principal.CurrentPrincipal, options.principal)
  const toolset = await runtime.runPromise(
    withPrincipal(
      Toolset.make({ connections: options.connections, tools: options.tools, maxBodyBytes: options.maxBodyBytes })
    )
  )
  return toolset.tools.map(({ definition, entry }) => ({
    name: definition.name,
    description: describe(definition, entry),
    inputSchema: definition.inputSchema,
    outputSchema: definition.outputSchema,
    definition,
    call: (args, signal) =>
      runtime.runPromise(
        withPrincipal(
          toolset
            .call(definition.name, isRecord(args) ? args : {})
            .pipe(Effect.catch((error: SwitchboardError) => Effect.succeed(Toolset.errorResult(error))))
        ),
        signal === undefined ? undefined : { signal }
      )
  }))
}

/** The result's value for a model: its structured content when present, else its text parts joined. */
export const valueOf = (result: Toolset.CallResult): unknown => result.structuredContent ?? Toolset.textOf(result)

/** The result, or a `SwitchboardToolError` thrown for an `isError` one. */
export const check = (tool: string, result: Toolset.CallResult): Toolset.CallResult => {
  if (result.isError === true) throw new SwitchboardToolError(tool, result)
  return result
}
