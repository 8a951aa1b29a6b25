/**
 * The tools of the test MCP servers, on the SDK's low-level `Server` with hand-written JSON Schemas (so the
 * server itself never validates arguments: what a test sees arrive is what the client sent). Every
 * `tools/call` is recorded, the slow tool records when its abort signal fires, and tools can be added at
 * runtime, which announces `notifications/tools/list_changed` to every open session.
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js"
import {
  CallToolRequestSchema,
  type CallToolResult,
  ListToolsRequestSchema,
  type Tool
} from "@modelcontextprotocol/sdk/types.js"

/** What a test server saw, shared by all of its sessions. */
export interface ToolServerState {
  /** Every `tools/call` received, in order. */
  readonly calls: Array<{ readonly name: string; readonly args: unknown }>
  /** Request ids of slow calls whose abort signal fired (the client cancelled them). */
  readonly cancelled: Array<string | number>
  /** Progress tokens the slow tool was given. */
  readonly progressTokens: Array<string | number>
  /** The tool list; `addTool` appends to it. */
  readonly tools: Array<Tool>
  /** `tools/list` page size; undefined for one page. */
  readonly pageSize: number | undefined
  /** Open server instances (one per session), for list_changed. */
  readonly servers: Set<Server>
  /** How many `tools/list` requests and `initialize`d sessions the server saw. */
  readonly counts: { list: number; sessions: number }
}

const text = (t: string, isError = false): CallToolResult => ({ content: [{ type: "text", text: t }], isError })

export const baseTools = (): Array<Tool> => [
  {
    name: "echo",
    description: "Echo the text back",
    inputSchema: { type: "object", properties: { text: { type: "string" } }, required: ["text"] }
  },
  {
    name: "add",
    description: "Add two numbers",
    inputSchema: {
      type: "object",
      properties: { a: { type: "number" }, b: { type: "number" } },
      required: ["a", "b"],
      additionalProperties: false
    }
  },
  {
    name: "slow",
    description: "Report progress every delay_ms for steps steps, then answer; stops when cancelled",
    inputSchema: {
      type: "object",
      properties: { steps: { type: "integer", minimum: 1 }, delay_ms: { type: "integer", minimum: 0 } },
      required: ["steps", "delay_ms"]
    }
  },
  {
    name: "fail",
    description: "Always answer with a tool error",
    inputSchema: { type: "object", properties: {} }
  },
  {
    name: "weather",
    description: "Structured weather for a city",
    inputSchema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    outputSchema: {
      type: "object",
      properties: { city: { type: "string" }, temperature: { type: "number" } },
      required: ["city", "temperature"]
    }
  }
]

export const makeState = (options: { readonly pageSize?: number | undefined } = {}): ToolServerState => ({
  calls: [],
  cancelled: [],
  progressTokens: [],
  tools: baseTools(),
  pageSize: options.pageSize,
  servers: new Set(),
  counts: { list: 0, sessions: 0 }
})

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms)
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer)
        reject(new Error("aborted"))
      },
      { once: true }
    )
  })

/** A new server instance over the shared state (one per session: an SDK server serves one transport). */
export const makeServer = (state: ToolServerState): Server => {
  const server = new Server(
    { name: "switchboard-test", version: "1.0.0" },
    { capabilities: { tools: { listChanged: true } } }
  )
  server.oninitialized = () => {
    state.counts.sessions++
  }
  server.setRequestHandler(ListToolsRequestSchema, (request) => {
    state.counts.list++
    const start = Number(request.params?.cursor ?? "0")
    const size = state.pageSize ?? state.tools.length
    const end = start + size
    return {
      tools: state.tools.slice(start, end),
      ...(end < state.tools.length ? { nextCursor: String(end) } : {})
    }
  })
  server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult> => {
    const { name } = request.params
    const args = request.params.arguments ?? {}
    state.calls.push({ name, args })
    switch (name) {
      case "echo":
        return text(String(args.text))
      case "add":
        return text(String(Number(args.a) + Number(args.b)))
      case "slow": {
        const token = request.params._meta?.progressToken
        if (token !== undefined) state.progressTokens.push(token)
        const steps = Number(args.steps)
        try {
          for (let i = 1; i <= steps; i++) {
            // oxlint-disable-next-line no-await-in-loop -- the steps are sequential by design
            await sleep(Number(args.delay_ms), extra.signal)
            if (token !== undefined) {
              // oxlint-disable-next-line no-await-in-loop -- one notification per step, in order
              await extra.sendNotification({
                method: "notifications/progress",
                params: { progressToken: token, progress: i, total: steps, message: `step ${i}` }
              })
            }
          }
        } catch {
          state.cancelled.push(extra.requestId)
          return text("cancelled", true)
        }
        return text(`done after ${steps} steps`)
      }
      case "fail":
        return text("the tool failed on purpose", true)
      case "weather":
        return {
          content: [{ type: "text", text: `sunny in ${String(args.city)}` }],
          structuredContent: { city: String(args.city), temperature: 21 }
        }
      default: {
        if (state.tools.some((t) => t.name === name)) return text(`${name} ran`)
        throw new Error(`unknown tool ${name}`)
      }
    }
  })
  state.servers.add(server)
  // oxlint-disable-next-line unicorn/prefer-add-event-listener -- the SDK's callbacks are properties
  server.onclose = () => state.servers.delete(server)
  return server
}

/** Add a tool and announce `tools/list_changed` on every open session. */
export const addTool = async (state: ToolServerState, name: string): Promise<void> => {
  state.tools.push({ name, description: `added at runtime`, inputSchema: { type: "object", properties: {} } })
  await Promise.all([...state.servers].map((server) => server.sendToolListChanged().catch(() => {})))
}
