/**
 * Replay: the `Upstream` and `McpUpstream` ports served from the cassettes of a directory, without a network, a
 * DNS lookup or a credential. A request is matched on its connection and key (see `Cassette`); identical requests
 * get the recorded answers in recorded order, and the last one again once they run out. A request with no
 * recorded answer fails with `cassette_miss` (502: the stand-in for the upstream has no answer, as a gateway whose
 * upstream gave none), naming what was asked and what the cassette holds; nothing is ever sent.
 *
 * `Switchboard.resolveCall` is decorated so a connection without credentials resolves to a placeholder, and the
 * OAuth refresh hook is the do-nothing default: replay needs neither secrets nor a token endpoint.
 */
import { UpstreamError } from "@switchboard/core/Errors"
import { type McpTool, type McpToolResult, McpUpstream } from "@switchboard/core/McpUpstream"
import { TokenRefresher } from "@switchboard/core/OAuthRefresher"
import { Switchboard } from "@switchboard/core/Switchboard"
import { Upstream, type UpstreamRequest, type UpstreamResponse } from "@switchboard/core/Upstream"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Path from "node:path"
import {
  bodyOf,
  bytesOf,
  callToolKey,
  CassetteError,
  errorOf,
  type File,
  fileName,
  httpKey,
  type Interaction,
  listToolsKey,
  matchQuery,
  maxStoredRequestBody,
  readAll,
  scrubJson
} from "./Cassette.ts"
import { decorate, Registry } from "./internal/connections.ts"
import { concat, headerOf, queryPairs } from "./internal/http.ts"

/** The key a recorded interaction is matched on. */
export const keyOf = (interaction: Interaction): string => {
  switch (interaction.type) {
    case "http": {
      const { request } = interaction
      return httpKey(request.method, request.path, matchQuery(request.query, new Set()), request.body?.sha256)
    }
    case "mcp.tools/list":
      return listToolsKey
    case "mcp.tools/call":
      return callToolKey(interaction.name, interaction.arguments)
  }
}

interface Track {
  readonly answers: Array<Interaction>
  next: number
}

/** The cassettes of a directory, indexed for matching. */
export interface Player {
  readonly registry: Registry
  /** The next answer for a key of a connection, or the `cassette_miss` error. */
  readonly take: (
    connection: string,
    key: string,
    asked: Record<string, unknown>
  ) => Effect.Effect<Interaction, UpstreamError>
}

export const makePlayer = (dir: string): Effect.Effect<Player, CassetteError> =>
  Effect.try({
    try: () => readAll(dir),
    catch: (cause) =>
      cause instanceof CassetteError
        ? cause
        : new CassetteError({ reason: "cassette_unreadable", message: `cannot read ${dir}`, cause })
  }).pipe(
    Effect.map((files: Map<string, File>) => {
      const registry = new Registry()
      const tracks = new Map<string, Map<string, Track>>()
      for (const [connection, file] of files) {
        const byKey = new Map<string, Track>()
        for (const interaction of file.interactions) {
          const key = keyOf(interaction)
          const track = byKey.get(key) ?? { answers: [], next: 0 }
          track.answers.push(interaction)
          byKey.set(key, track)
        }
        tracks.set(connection, byKey)
      }
      const take = (connection: string, key: string, asked: Record<string, unknown>) =>
        Effect.suspend(() => {
          const track = tracks.get(connection)?.get(key)
          if (track === undefined) {
            const recorded = [...(tracks.get(connection)?.keys() ?? [])]
            const file = Path.join(dir, fileName(connection))
            return Effect.fail(
              new UpstreamError({
                reason: "cassette_miss",
                message:
                  `replay: no recorded answer for ${key} on connection ${connection}` +
                  (tracks.has(connection) ? ` in ${file}` : `: ${file} does not exist`),
                details: { connection, cassette: file, asked, recorded: recorded.slice(0, 20) }
              })
            )
          }
          const index = Math.min(track.next, track.answers.length - 1)
          track.next += 1
          return Effect.succeed(track.answers[index] as Interaction)
        })
      return { registry, take }
    })
  )

/** The HTTP upstream, replaying. */
export const replayUpstream = (player: Player): Upstream["Service"] =>
  Upstream.of({
    request: Effect.fn("Cassette.replay.request")(function* (req: UpstreamRequest) {
      const { registry } = player
      const url = new URL(req.url)
      const connection = req.key === undefined ? `http-${url.host}` : registry.nameOf(req.key)
      const bytes = req.body === undefined ? undefined : concat(yield* Stream.runCollect(req.body))
      registry.add(registry.secretHeaderValues(req.key, req.headers))
      const scrub = registry.scrubber()
      const method = req.method.toUpperCase()
      const path = scrub(url.pathname)
      const query = matchQuery(queryPairs(url, registry.secretQueryNames(req.key), scrub), new Set())
      const contentType = headerOf(req.headers, "content-type")
      const body =
        bytes === undefined
          ? undefined
          : bodyOf(bytes, typeof contentType === "string" ? contentType : undefined, scrub, maxStoredRequestBody)
      const key = httpKey(method, path, query, body?.sha256)
      const answer = yield* player.take(connection, key, {
        method,
        path,
        query,
        ...(body === undefined ? {} : { body_sha256: body.sha256 })
      })
      if (answer.type !== "http") return yield* Effect.die(new Error("a cassette key matched another kind"))
      if (answer.error !== undefined) return yield* Effect.fail(errorOf(answer.error) as UpstreamError)
      const response = answer.response
      if (response === undefined) return yield* Effect.die(new Error("a recorded exchange has no response"))
      const out = bytesOf(response.body)
      const headers: Record<string, string> = {}
      for (const [name, value] of Object.entries(response.headers)) {
        // Scrubbing may have changed the body's length: the length is the replayed body's.
        headers[name] = name.toLowerCase() === "content-length" ? String(out.length) : value
      }
      const replayed: UpstreamResponse = {
        status: response.status,
        headers,
        body: out.length === 0 ? Stream.empty : Stream.make(out)
      }
      return replayed
    })
  })

/** The MCP upstream, replaying. */
export const replayMcp = (player: Player): McpUpstream["Service"] =>
  McpUpstream.of({
    listTools: Effect.fn("Cassette.replay.listTools")(function* (target) {
      const answer = yield* player.take(player.registry.nameOf(target.key), listToolsKey, { method: "tools/list" })
      if (answer.type !== "mcp.tools/list") return yield* Effect.die(new Error("a cassette key matched another kind"))
      if (answer.error !== undefined) return yield* Effect.fail(errorOf(answer.error) as UpstreamError)
      return (answer.tools ?? []) as ReadonlyArray<McpTool>
    }),
    callTool: Effect.fn("Cassette.replay.callTool")(function* (target, name, args) {
      const scrub = player.registry.scrubber()
      const clean = scrubJson(args, scrub)
      const answer = yield* player.take(player.registry.nameOf(target.key), callToolKey(name, clean), {
        method: "tools/call",
        name,
        arguments: clean
      })
      if (answer.type !== "mcp.tools/call") return yield* Effect.die(new Error("a cassette key matched another kind"))
      if (answer.error !== undefined) return yield* Effect.fail(errorOf(answer.error))
      return answer.result as McpToolResult
    }),
    toolsChanged: Stream.never
  })

/**
 * Replay from `dir`: the `Upstream` and `McpUpstream` ports, the `Switchboard` (needed) with placeholder
 * credentials for connections that have none, and the do-nothing OAuth refresh hook.
 */
export const layerReplay = (
  dir: string
): Layer.Layer<Upstream | McpUpstream | Switchboard, CassetteError, Switchboard> =>
  Layer.effectContext(
    Effect.gen(function* () {
      const player = yield* makePlayer(dir)
      const sb = yield* Switchboard
      return Context.make(Upstream, replayUpstream(player)).pipe(
        Context.add(McpUpstream, replayMcp(player)),
        Context.add(Switchboard, decorate(sb, player.registry, true)),
        Context.add(TokenRefresher, TokenRefresher.defaultValue())
      )
    })
  )
