/**
 * The `<connection>__request` tool of a REST connection: an HTTP request (method, path below the connection's
 * base URL, query, headers, body) sent through the credential-injecting proxy, and the response (status,
 * headers, body) as JSON. Bodies are read up to a limit; a longer one is cut and the result says so. JSON
 * bodies come back parsed, text as text, anything else base64-encoded.
 */
import type * as Connection from "@switchboard/core/Connection"
import type * as Connector from "@switchboard/core/Connector"
import * as Proxy from "@switchboard/core/Proxy"
import * as Validation from "@switchboard/core/Validation"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { type CallResult, json, type ToolDefinition } from "./Protocol.ts"

/** The name of the tool each REST connection gets (before the connection prefix). */
export const TOOL = "request"

/** Bodies longer than this are cut (64 KiB by default). */
export const defaultMaxBodyBytes = 64 * 1024

const methods = [...Proxy.methods]

export const inputSchema = {
  type: "object",
  properties: {
    method: { type: "string", enum: methods, default: "GET", description: "The HTTP method" },
    path: {
      type: "string",
      description: "The path below the connection's base URL, e.g. /v1/items (it may carry a ?query)"
    },
    query: {
      type: "object",
      description: "Query parameters; a list repeats the parameter",
      additionalProperties: {
        anyOf: [{ type: ["string", "number", "boolean"] }, { type: "array", items: { type: "string" } }]
      }
    },
    headers: {
      type: "object",
      description: "Request headers. Credentials are added by Switchboard: never send your own",
      additionalProperties: { type: "string" }
    },
    body: { description: "The request body: a string is sent as it is, any other JSON value as JSON" }
  },
  required: ["path"],
  additionalProperties: false
} as const

export const outputSchema = {
  type: "object",
  properties: {
    status: { type: "integer", description: "The upstream's HTTP status" },
    headers: { type: "object", additionalProperties: { type: "string" } },
    body: { description: "Parsed JSON, text, or base64 (see body_encoding)" },
    body_encoding: { type: "string", enum: ["json", "text", "base64", "none"] },
    truncated: { type: "boolean", description: "Whether the body was cut at the size limit" },
    note: { type: "string" }
  },
  required: ["status", "headers", "body_encoding", "truncated"]
} as const

/** The tool's definition for a connection, under the name it is offered with. */
export const definition = (
  name: string,
  connection: Connection.Connection,
  connector: Connector.Connector
): ToolDefinition => {
  const about = connector.description === undefined || connector.description === "" ? "" : ` ${connector.description}`
  const base = connector.proxy_url === undefined ? "" : ` Base URL: ${connector.proxy_url}.`
  return {
    name,
    title: `${connection.name}: HTTP request`,
    description:
      `Send an HTTP request to ${connector.display_name} through the connection "${connection.name}"; ` +
      `Switchboard adds the credentials.${base}${about}`,
    inputSchema,
    outputSchema,
    annotations: { title: `${connection.name}: HTTP request`, openWorldHint: true }
  }
}

const Scalar = Schema.Union([Schema.String, Schema.Finite, Schema.Boolean])

const Args = Schema.Struct({
  method: Schema.optionalKey(Schema.Literals(methods)),
  path: Schema.String,
  query: Schema.optionalKey(Schema.Record(Schema.String, Schema.Union([Scalar, Schema.Array(Schema.String)]))),
  headers: Schema.optionalKey(Schema.Record(Schema.String, Schema.String)),
  body: Schema.optionalKey(Schema.Unknown)
})

const encoder = new TextEncoder()

const hasHeader = (headers: Readonly<Record<string, string>>, name: string) =>
  Object.keys(headers).some((k) => k.toLowerCase() === name)

const isJson = (contentType: string) => /[/+]json\b/iu.test(contentType)
const isText = (contentType: string) =>
  contentType === "" ||
  /^text\//iu.test(contentType) ||
  isJson(contentType) ||
  /\b(xml|javascript|x-www-form-urlencoded|yaml|csv|graphql)\b/iu.test(contentType)

const headerOf = (headers: Readonly<Record<string, string>>, name: string): string => {
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return v
  return ""
}

/** The first `limit` bytes of a body, and whether there were more. */
const readUpTo = (body: Stream.Stream<Uint8Array, unknown>, limit: number) =>
  Effect.gen(function* () {
    const chunks: Array<Uint8Array> = []
    let size = 0
    let truncated = false
    yield* Stream.runForEachWhile(body, (chunk) =>
      Effect.sync(() => {
        const room = limit - size
        if (chunk.length > room) {
          chunks.push(chunk.subarray(0, room))
          size = limit
          truncated = true
          return false
        }
        chunks.push(chunk)
        size += chunk.length
        return true
      })
    )
    const bytes = new Uint8Array(size)
    let offset = 0
    for (const chunk of chunks) {
      bytes.set(chunk, offset)
      offset += chunk.length
    }
    return { bytes, truncated }
  })

/** The response as the tool's structured result. */
export const render = (
  status: number,
  headers: Readonly<Record<string, string>>,
  bytes: Uint8Array,
  truncated: boolean,
  limit: number
): CallResult => {
  const contentType = headerOf(headers, "content-type")
  let body: unknown = null
  let encoding: "json" | "text" | "base64" | "none" = "none"
  if (bytes.length > 0 || truncated) {
    if (isText(contentType)) {
      const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes)
      encoding = "text"
      body = text
      if (isJson(contentType) && !truncated) {
        const parsed = Result.try(() => JSON.parse(text) as unknown)
        if (Result.isSuccess(parsed)) {
          body = parsed.success
          encoding = "json"
        }
      }
    } else {
      body = Buffer.from(bytes).toString("base64")
      encoding = "base64"
    }
  }
  const note = truncated
    ? `the body was longer than ${limit} bytes: only the first ${limit} are shown; ask for less (a range, a page, a filter)`
    : undefined
  return json(
    {
      status,
      headers,
      body,
      body_encoding: encoding,
      truncated,
      ...(note === undefined ? {} : { note })
    },
    status >= 400
  )
}

/** Send the request through the proxy and render the response. Failures are left to the caller. */
export const call = Effect.fn("RequestTool.call")(function* (
  proxy: Proxy.Proxy["Service"],
  connectionId: string,
  args: unknown,
  maxBodyBytes: number
) {
  const input = yield* Validation.decode(Args, "arguments of the request tool")(args)
  const headers: Record<string, string> = { ...input.headers }
  let body: Uint8Array | undefined
  if (input.body !== undefined) {
    if (typeof input.body === "string") body = encoder.encode(input.body)
    else {
      body = encoder.encode(JSON.stringify(input.body))
      if (!hasHeader(headers, "content-type")) headers["content-type"] = "application/json"
    }
  }
  const query: Record<string, string | ReadonlyArray<string>> = {}
  for (const [k, v] of Object.entries(input.query ?? {})) query[k] = Array.isArray(v) ? v : String(v)
  const response = yield* proxy.request(connectionId, {
    method: input.method ?? "GET",
    path: input.path,
    query,
    headers,
    ...(body === undefined ? {} : { body: Stream.succeed(body) })
  })
  const { bytes, truncated } = yield* readUpTo(response.body, maxBodyBytes)
  return render(response.status, response.headers, bytes, truncated, maxBodyBytes)
})
