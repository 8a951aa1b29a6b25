/**
 * Recording: decorators of the `Upstream` and `McpUpstream` ports (and of `Switchboard.resolveCall`, to learn
 * connection names and secrets) that pass every call to the real adapter and append what went and came back to
 * the connection's cassette, scrubbed of secrets, rewriting the file after each interaction. Bodies are read
 * whole on the way (recording trades streaming for a faithful copy). Recording replaces the cassette of each
 * connection it records.
 */
import { canonicalJson } from "@switchboard/core/Canonical"
import type { UpstreamError, ValidationFailed } from "@switchboard/core/Errors"
import { type McpTarget, McpUpstream } from "@switchboard/core/McpUpstream"
import { Switchboard } from "@switchboard/core/Switchboard"
import { Upstream, type UpstreamRequest, type UpstreamResponse } from "@switchboard/core/Upstream"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import {
  bodyOf,
  CassetteError,
  errorRecordOf,
  FORMAT,
  type HttpInteraction,
  type Interaction,
  maxStoredRequestBody,
  REDACTED,
  scrubJson,
  VERSION,
  write
} from "./Cassette.ts"
import { decorate, Registry } from "./internal/connections.ts"
import { concat, headerOf, queryPairs } from "./internal/http.ts"

const upstreamCookies: ReadonlySet<string> = new Set(["set-cookie", "set-cookie2"])

/** The recorder of one cassette directory. */
export interface Recorder {
  readonly registry: Registry
  readonly append: (connection: string, interaction: Interaction) => Effect.Effect<void>
}

/** Create the directory (0700) and a recorder writing into it. */
export const makeRecorder = (dir: string): Effect.Effect<Recorder, CassetteError> =>
  Effect.try({
    try: () => {
      Fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
      Fs.accessSync(dir, Fs.constants.W_OK)
      const registry = new Registry()
      const cassettes = new Map<string, Array<Interaction>>()
      const append = (connection: string, interaction: Interaction) =>
        Effect.sync(() => {
          const interactions = cassettes.get(connection) ?? []
          interactions.push(interaction)
          cassettes.set(connection, interactions)
          // The whole file again, after a last scrub of its text with every secret known by now.
          const scrub = registry.scrubber()
          const file = { format: FORMAT, version: VERSION, connection, interactions } as const
          write(dir, JSON.parse(scrub(JSON.stringify(file))) as typeof file)
        })
      return { registry, append }
    },
    catch: (cause) => new CassetteError({ reason: "cassette_unwritable", message: `cannot record into ${dir}`, cause })
  })

/** The HTTP upstream, recording. */
export const recordUpstream = (real: Upstream["Service"], recorder: Recorder): Upstream["Service"] =>
  Upstream.of({
    request: Effect.fn("Cassette.record.request")(function* (req: UpstreamRequest) {
      const { registry } = recorder
      const url = new URL(req.url)
      const connection = req.key === undefined ? `http-${url.host}` : registry.nameOf(req.key)
      const requestBytes = req.body === undefined ? undefined : concat(yield* Stream.runCollect(req.body))
      const exit = yield* Effect.exit(
        Effect.flatMap(
          real.request({ ...req, body: requestBytes === undefined ? undefined : Stream.make(requestBytes) }),
          (response) => Effect.map(Stream.runCollect(response.body), (chunks) => ({ response, bytes: concat(chunks) }))
        )
      )
      // Scrubbed with every secret known, including the ones of this request's own headers.
      registry.add(registry.secretHeaderValues(req.key, req.headers))
      const scrub = registry.scrubber()
      const secretNames = registry.secretQueryNames(req.key)
      const headers: Record<string, string> = {}
      for (const [name, value] of Object.entries(req.headers)) {
        headers[name] = !Redacted.isRedacted(value)
          ? scrub(value)
          : registry.isPlainHeader(req.key, name)
            ? scrub(Redacted.value(value))
            : REDACTED
      }
      const contentType = headerOf(req.headers, "content-type")
      const request: HttpInteraction["request"] = {
        method: req.method.toUpperCase(),
        path: scrub(url.pathname),
        query: queryPairs(url, secretNames, scrub),
        headers,
        ...(requestBytes === undefined
          ? {}
          : {
              body: bodyOf(
                requestBytes,
                typeof contentType === "string" ? contentType : undefined,
                scrub,
                maxStoredRequestBody
              )
            })
      }
      const base = { type: "http", origin: scrub(url.origin), request } as const
      if (Exit.isFailure(exit)) {
        const error = Cause.findErrorOption(exit.cause)
        if (error._tag === "Some") {
          yield* recorder.append(connection, { ...base, error: errorRecordOf(error.value, scrub) })
        }
        return yield* Effect.failCause(exit.cause)
      }
      const { response, bytes } = exit.value
      const responseHeaders: Record<string, string> = {}
      for (const [name, value] of Object.entries(response.headers)) {
        responseHeaders[name] = upstreamCookies.has(name.toLowerCase()) ? REDACTED : scrub(value)
      }
      yield* recorder.append(connection, {
        ...base,
        response: {
          status: response.status,
          headers: responseHeaders,
          body: bodyOf(bytes, headerOf<string>(response.headers, "content-type"), scrub)
        }
      })
      const answer: UpstreamResponse = {
        ...response,
        body: bytes.length === 0 ? Stream.empty : Stream.make(bytes)
      }
      return answer
    })
  })

const secretsOfTarget = (registry: Registry, target: McpTarget): Array<string> => [
  ...(target._tag === "Http"
    ? [
        ...registry.secretHeaderValues(target.key, target.headers),
        ...Object.values(target.query ?? {}).map((v) => Redacted.value(v))
      ]
    : Object.values(target.env).map((v) => Redacted.value(v))),
  ...(target.secrets ?? []).map((v) => Redacted.value(v))
]

/** The MCP upstream, recording. */
export const recordMcp = (real: McpUpstream["Service"], recorder: Recorder): McpUpstream["Service"] => {
  const { registry } = recorder
  const lastLists = new Map<string, string>()
  const failure = <E extends UpstreamError | ValidationFailed>(exit: Exit.Exit<unknown, E>) => {
    if (Exit.isSuccess(exit)) return undefined
    const error = Cause.findErrorOption(exit.cause)
    return error._tag === "Some" ? error.value : undefined
  }
  return McpUpstream.of({
    listTools: Effect.fn("Cassette.record.listTools")(function* (target: McpTarget) {
      registry.add(secretsOfTarget(registry, target))
      const exit = yield* Effect.exit(real.listTools(target))
      const scrub = registry.scrubber()
      const error = failure(exit)
      if (Exit.isSuccess(exit)) {
        const connection = registry.nameOf(target.key)
        const tools = scrubJson(exit.value, scrub) as ReadonlyArray<unknown>
        // Lists are asked for often (every MCP client session, every poll): an unchanged one is kept once, and
        // replay answers with the last list again.
        const text = canonicalJson(tools)
        if (lastLists.get(connection) !== text) {
          lastLists.set(connection, text)
          yield* recorder.append(connection, { type: "mcp.tools/list", tools })
        }
      } else if (error !== undefined) {
        yield* recorder.append(registry.nameOf(target.key), {
          type: "mcp.tools/list",
          error: errorRecordOf(error, scrub)
        })
      }
      return yield* exit
    }),
    callTool: Effect.fn("Cassette.record.callTool")(function* (target, name, args, options) {
      registry.add(secretsOfTarget(registry, target))
      const exit = yield* Effect.exit(real.callTool(target, name, args, options))
      const scrub = registry.scrubber()
      const base = { type: "mcp.tools/call", name, arguments: scrubJson(args, scrub) } as const
      const error = failure(exit)
      if (Exit.isSuccess(exit)) {
        yield* recorder.append(registry.nameOf(target.key), { ...base, result: scrubJson(exit.value, scrub) })
      } else if (error !== undefined) {
        yield* recorder.append(registry.nameOf(target.key), { ...base, error: errorRecordOf(error, scrub) })
      }
      return yield* exit
    }),
    toolsChanged: real.toolsChanged
  })
}

/**
 * Record into `dir`: wraps the real `Upstream` and `McpUpstream` (and the `Switchboard`, whose `resolveCall` names
 * the connections and their secrets), which must be provided.
 */
export const layerRecord = (
  dir: string
): Layer.Layer<Upstream | McpUpstream | Switchboard, CassetteError, Upstream | McpUpstream | Switchboard> =>
  Layer.effectContext(
    Effect.gen(function* () {
      const recorder = yield* makeRecorder(dir)
      const upstream = yield* Upstream
      const mcp = yield* McpUpstream
      const sb = yield* Switchboard
      return Context.make(Upstream, recordUpstream(upstream, recorder)).pipe(
        Context.add(McpUpstream, recordMcp(mcp, recorder)),
        Context.add(Switchboard, decorate(sb, recorder.registry, false))
      )
    })
  )
