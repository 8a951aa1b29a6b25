/**
 * One client session with one MCP server, on the SDK's `Client`: streamable HTTP with a fall back to legacy
 * SSE when the server answers the first POST with a 4xx (the MCP spec's backwards-compatibility rule), or a
 * local program on stdio with a minimal environment plus the rendered credential env. Credential headers
 * and query parameters are revealed only inside the `fetch` given to the transports, for requests to the
 * server's own origin; that `fetch` goes through the SSRF guard (see `fetch.ts`).
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js"
import { getDefaultEnvironment, StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import { StreamableHTTPClientTransport, StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import type { FetchLike, Transport } from "@modelcontextprotocol/sdk/shared/transport.js"
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js"
import type { McpTarget, McpTool } from "@switchboard/core/McpUpstream"
import type { Issue } from "@switchboard/core/Validation"
import type { Resolver } from "@switchboard/core/Resolver"
import * as Redacted from "effect/Redacted"
import { FallbackFailed } from "./failures.ts"
import { makeAgents, pinnedFetch } from "./fetch.ts"
import type { TolerantValidator } from "./schemas.ts"
import type { StderrTail } from "./secrets.ts"

type HttpTarget = Extract<McpTarget, { readonly _tag: "Http" }>
type StdioTarget = Extract<McpTarget, { readonly _tag: "Stdio" }>

export interface CachedTools {
  readonly tools: ReadonlyArray<McpTool>
  /** Argument checks, compiled on first use. */
  readonly checks: Map<string, (args: unknown) => ReadonlyArray<Issue>>
}

/** A live session and what the adapter keeps about it. */
export interface Session {
  readonly client: Client
  readonly transport: "streamable_http" | "sse" | "stdio"
  readonly validator: TolerantValidator
  readonly stderr: StderrTail | undefined
  /** The tool list, until the server says it changed. */
  tools: CachedTools | undefined
  /** Bumped by every `tools/list_changed`, so a list fetched across a change is not cached. */
  toolsVersion: number
  /** The transport closed (the program exited, the stream ended). */
  closed: boolean
  /** A request failed in a way that makes the session unusable. */
  broken: boolean
  readonly close: () => Promise<void>
}

export interface OpenOptions {
  readonly clientInfo: { readonly name: string; readonly version: string }
  /** Timeout of the `initialize` request. */
  readonly initializeTimeoutMillis: number
  readonly validator: TolerantValidator
  readonly stderr: StderrTail | undefined
  readonly onToolsChanged: () => void
  /** DNS for the SSRF guard. */
  readonly resolver: Resolver["Service"]
  /** The daemon-wide local-first switch, on top of the connection's own `allowPrivateNetwork`. */
  readonly allowPrivateNetwork: boolean
}

const ignore = () => {}

/**
 * The `fetch` of an HTTP target over a base `fetch` (the SSRF-guarded one): the target's credentials are
 * revealed here, for requests to the server's own origin only, and redirects are never followed by the base.
 */
export const withCredentials = (target: HttpTarget, base: FetchLike): FetchLike => {
  const origin = new URL(target.url).origin
  return (input, init) => {
    const url = new URL(input)
    const headers = new Headers()
    if (url.origin === origin) {
      for (const [name, value] of Object.entries(target.headers)) headers.set(name, Redacted.value(value))
      for (const [name, value] of Object.entries(target.query ?? {})) url.searchParams.set(name, Redacted.value(value))
    }
    // The transport's own headers (session id, protocol version, accept) win over configured ones.
    new Headers(init?.headers).forEach((value, name) => headers.set(name, value))
    return base(url, { ...init, headers, redirect: init?.redirect === "error" ? "error" : "manual" })
  }
}

const newClient = (options: OpenOptions, hooks: Hooks): Client => {
  const client = new Client(
    { name: options.clientInfo.name, version: options.clientInfo.version },
    { capabilities: {}, jsonSchemaValidator: options.validator }
  )
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => hooks.onChanged())
  // The SDK's callbacks are properties, not events.
  // oxlint-disable-next-line unicorn/prefer-add-event-listener
  client.onclose = () => hooks.onClose(client)
  // Transport errors also surface as failed requests; background ones (a dropped SSE stream) are not news.
  // oxlint-disable-next-line unicorn/prefer-add-event-listener
  client.onerror = ignore
  return client
}

const closeQuietly = (client: Client) => client.close().catch(ignore)

/** Abandon a connect in progress when the signal aborts (a timeout or an interrupted caller). */
const closeOnAbort = (signal: AbortSignal, client: Client) => {
  const onAbort = () => void closeQuietly(client)
  signal.addEventListener("abort", onAbort, { once: true })
  return () => signal.removeEventListener("abort", onAbort)
}

/**
 * The SDK handles notifications one microtask late but responses at once, so when the last progress
 * notification of a call and its result arrive in the same chunk, the result wins and the progress is
 * dropped. Handing responses over one microtask later keeps the order the server sent.
 */
const keepProgressBeforeResults = (transport: Transport) => {
  const deliver = transport.onmessage
  if (deliver === undefined) return
  // oxlint-disable-next-line unicorn/prefer-add-event-listener
  transport.onmessage = (message, extra) => {
    if ("id" in message && !("method" in message)) queueMicrotask(() => deliver(message, extra))
    else deliver(message, extra)
  }
}

const connect = async (client: Client, transport: Transport, options: OpenOptions, signal: AbortSignal) => {
  const release = closeOnAbort(signal, client)
  try {
    await client.connect(transport, { signal, timeout: options.initializeTimeoutMillis })
    keepProgressBeforeResults(transport)
  } catch (error) {
    await closeQuietly(client)
    throw error
  } finally {
    release()
  }
}

const withTimeout = (promise: Promise<unknown>, millis: number) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, millis)
    timer.unref()
    void promise.catch(ignore).finally(() => {
      clearTimeout(timer)
      resolve()
    })
  })

const openHttp = async (target: HttpTarget, options: OpenOptions, hooks: Hooks, signal: AbortSignal) => {
  const url = new URL(target.url)
  const agents = makeAgents()
  const fetch = withCredentials(
    target,
    pinnedFetch({
      resolver: options.resolver,
      allowPrivateNetwork: options.allowPrivateNetwork || target.allowPrivateNetwork,
      agents
    })
  )
  const streamable = new StreamableHTTPClientTransport(url, { fetch })
  let client = newClient(options, hooks)
  try {
    await connect(client, streamable, options, signal)
    return {
      client,
      transport: "streamable_http" as const,
      // Ask the server to drop the session (it may not support it), without waiting long for a dead one.
      close: async () => {
        await withTimeout(streamable.terminateSession(), 2000)
        await closeQuietly(client)
        agents.destroy()
      }
    }
  } catch (error) {
    const status = error instanceof StreamableHTTPError ? error.code : undefined
    if (status === undefined || status < 400 || status >= 500 || signal.aborted) {
      agents.destroy()
      throw error
    }
    client = newClient(options, hooks)
    try {
      await connect(client, new SSEClientTransport(url, { fetch }), options, signal)
    } catch (fallback) {
      agents.destroy()
      throw new FallbackFailed(error, fallback)
    }
    const sse = client
    return {
      client: sse,
      transport: "sse" as const,
      close: async () => {
        await closeQuietly(sse)
        agents.destroy()
      }
    }
  }
}

const openStdio = async (target: StdioTarget, options: OpenOptions, hooks: Hooks, signal: AbortSignal) => {
  const env: Record<string, string> = getDefaultEnvironment()
  for (const [name, value] of Object.entries(target.env)) env[name] = Redacted.value(value)
  const transport = new StdioClientTransport({
    command: target.program,
    args: [...target.args],
    env,
    stderr: "pipe"
  })
  // Consuming stderr also keeps a chatty program from blocking on a full pipe.
  transport.stderr?.on("data", (chunk: Buffer) => options.stderr?.append(chunk))
  const client = newClient(options, hooks)
  await connect(client, transport, options, signal)
  // close() ends the program's stdin, then SIGTERM after 2 s, then SIGKILL.
  return { client, transport: "stdio" as const, close: () => closeQuietly(client) }
}

interface Hooks {
  readonly onChanged: () => void
  readonly onClose: (client: Client) => void
}

/** Connect to the target's server and run `initialize`. Rejects with the SDK's or the network's error. */
export const open = async (target: McpTarget, options: OpenOptions, signal: AbortSignal): Promise<Session> => {
  // The hooks run from the SDK's callbacks, possibly before the session exists.
  const current: { session?: Session } = {}
  const closedEarly = new Set<Client>()
  const hooks: Hooks = {
    onChanged: () => {
      if (current.session !== undefined) {
        current.session.tools = undefined
        current.session.toolsVersion++
      }
      options.onToolsChanged()
    },
    onClose: (client) => {
      if (current.session === undefined) closedEarly.add(client)
      else if (current.session.client === client) current.session.closed = true
    }
  }
  const opened =
    target._tag === "Http"
      ? await openHttp(target, options, hooks, signal)
      : await openStdio(target, options, hooks, signal)
  const session: Session = {
    ...opened,
    validator: options.validator,
    stderr: options.stderr,
    tools: undefined,
    toolsVersion: 0,
    closed: closedEarly.has(opened.client),
    broken: false
  }
  current.session = session
  return session
}
