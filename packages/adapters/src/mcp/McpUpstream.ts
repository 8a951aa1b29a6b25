/**
 * The `McpUpstream` port on the MCP SDK's `Client`. One pooled session per target (its `key` plus a keyed
 * digest of the credential-bearing fields, so a rotated credential reconnects), opened lazily, closed after
 * being idle, dropped after a failure that makes it unusable and re-opened on the next use. Tool lists are
 * fetched page by page and cached per session until the server sends `notifications/tools/list_changed`,
 * which is also published on `toolsChanged`. Arguments are checked against the tool's input schema with the
 * SDK's own validator before a call is sent; progress is passed through; interrupting a call aborts it, and
 * the SDK sends `notifications/cancelled`. Retries: a list once on a fresh session after any session
 * failure; a tool call only when the request certainly never reached the server. HTTP goes through the
 * shared SSRF guard (`http/Ssrf.ts`), resolving with the `Resolver` service and pinning the checked address.
 */
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js"
import { UpstreamError, ValidationFailed } from "@switchboard/core/Errors"
import {
  type CallOptions,
  type McpTarget,
  type McpTool,
  type McpToolResult,
  McpUpstream
} from "@switchboard/core/McpUpstream"
import { Resolver } from "@switchboard/core/Resolver"
import * as Validation from "@switchboard/core/Validation"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Equal from "effect/Equal"
import * as Hash from "effect/Hash"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import * as RcMap from "effect/RcMap"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import { classify, type Context, SessionFailure } from "./internal/failures.ts"
import { checkArguments, TolerantValidator } from "./internal/schemas.ts"
import { makeScrubber, poolKeyOf, secretsOf, StderrTail } from "./internal/secrets.ts"
import * as Session from "./internal/session.ts"

export interface Options {
  /** How long an unused session stays open; 5 minutes by default. */
  readonly idleTimeToLive?: Duration.Input | undefined
  /** Limit on opening a session (spawn or connect, then `initialize`); 30 seconds by default. */
  readonly connectTimeout?: Duration.Input | undefined
  /** Timeout of each `tools/list` page; 30 seconds by default. */
  readonly listTimeout?: Duration.Input | undefined
  /** Timeout of a tool call when the caller gives none; 60 seconds by default. */
  readonly callTimeout?: Duration.Input | undefined
  /** How much of a local program's stderr is kept for error messages; 8 KiB by default. */
  readonly stderrLimit?: number | undefined
  /** How Switchboard introduces itself in `initialize`. */
  readonly clientInfo?: { readonly name: string; readonly version: string } | undefined
  /** The daemon-wide local-first switch: allow loopback and private servers for every connection. */
  readonly allowPrivateNetwork?: boolean | undefined
}

/** A pool key that carries its target, compared by the key alone. */
class PoolKey implements Equal.Equal {
  readonly id: string
  readonly target: McpTarget
  constructor(id: string, target: McpTarget) {
    this.id = id
    this.target = target
  }
  [Equal.symbol](that: Equal.Equal): boolean {
    return that instanceof PoolKey && that.id === this.id
  }
  [Hash.symbol](): number {
    return Hash.string(this.id)
  }
}

const toTool = (tool: McpTool): McpTool => ({
  name: tool.name,
  ...(tool.title === undefined ? {} : { title: tool.title }),
  ...(tool.description === undefined ? {} : { description: tool.description }),
  inputSchema: tool.inputSchema,
  ...(tool.outputSchema === undefined ? {} : { outputSchema: tool.outputSchema }),
  ...(tool.annotations === undefined ? {} : { annotations: tool.annotations })
})

const toResult = (result: CallToolResult): McpToolResult => ({
  content: result.content,
  ...(result.structuredContent === undefined ? {} : { structuredContent: result.structuredContent }),
  ...(result.isError === undefined ? {} : { isError: result.isError })
})

/** What an error message may name about a target: the server's origin and path, or the program. */
const describeTarget = (target: McpTarget): string => {
  if (target._tag === "Stdio") return `local MCP program ${target.program}`
  const url = new URL(target.url)
  return `MCP server ${url.origin}${url.pathname}`
}

const MAX_PAGES = 100

export const make = (options: Options = {}): Effect.Effect<McpUpstream["Service"], never, Scope.Scope | Resolver> =>
  Effect.gen(function* () {
    const resolver = yield* Resolver
    const connectTimeout = Duration.fromInputUnsafe(options.connectTimeout ?? "30 seconds")
    const listTimeoutMillis = Duration.toMillis(options.listTimeout ?? "30 seconds")
    const callTimeoutMillis = Duration.toMillis(options.callTimeout ?? "60 seconds")
    const stderrLimit = options.stderrLimit ?? 8192
    const clientInfo = options.clientInfo ?? { name: "switchboard", version: "0.1.0" }
    // Pool keys are digests of credentials under a key that never leaves the process.
    const digestKey = randomBytes(32)

    const changes = yield* PubSub.unbounded<string>()
    yield* Effect.addFinalizer(() => PubSub.shutdown(changes))

    const open = (target: McpTarget) => {
      const scrub = makeScrubber(secretsOf(target))
      const stderr = target._tag === "Stdio" ? new StderrTail(stderrLimit, scrub) : undefined
      const context: Context = {
        // scrubbed: a URL may carry a secret in its path
        operation: scrub(`connecting to ${describeTarget(target)}`),
        phase: "connect",
        scrub,
        get stderr() {
          return stderr?.value
        }
      }
      return Effect.acquireRelease(
        Effect.tryPromise({
          try: (signal) =>
            Session.open(
              target,
              {
                clientInfo,
                initializeTimeoutMillis: Duration.toMillis(connectTimeout),
                validator: new TolerantValidator(),
                stderr,
                resolver,
                allowPrivateNetwork: options.allowPrivateNetwork ?? false,
                onToolsChanged: () => {
                  PubSub.publishUnsafe(changes, target.key)
                }
              },
              signal
            ),
          catch: (cause) => classify(cause, context)
        }).pipe(
          Effect.timeoutOrElse({
            duration: connectTimeout,
            orElse: () =>
              Effect.fail(
                new SessionFailure({
                  error: new UpstreamError({
                    reason: "upstream_timeout",
                    message: `${context.operation} timed out after ${Duration.toMillis(connectTimeout)} ms`,
                    details: { operation: context.operation }
                  }),
                  phase: "connect",
                  healthy: false,
                  notSent: false
                })
              )
          })
        ),
        (session) => Effect.promise(() => session.close())
      )
    }

    const sessions = yield* RcMap.make({
      lookup: (key: PoolKey) => open(key.target),
      idleTimeToLive: options.idleTimeToLive ?? "5 minutes"
    })

    /** Forget a session that failed: the first to notice drops it from the pool; it closes once released. */
    const markBroken = (session: Session.Session, key: PoolKey) =>
      Effect.suspend(() => {
        if (session.broken) return Effect.void
        session.broken = true
        return RcMap.invalidate(sessions, key)
      })

    const get = (key: PoolKey) => RcMap.get(sessions, key).pipe(Effect.tapError(() => RcMap.invalidate(sessions, key)))

    const acquire = (key: PoolKey) =>
      Effect.flatMap(get(key), (session) =>
        session.closed || session.broken
          ? Effect.andThen(RcMap.invalidate(sessions, key), get(key))
          : Effect.succeed(session)
      )

    /**
     * Run `use` on the target's session. A failure that leaves the session unusable drops it; when
     * `retry` says so, the operation runs once more on a fresh session.
     */
    const withSession = <A, E extends SessionFailure | ValidationFailed>(
      target: McpTarget,
      use: (session: Session.Session, context: (operation: string) => Context) => Effect.Effect<A, E>,
      retry: (failure: SessionFailure) => boolean
    ): Effect.Effect<A, UpstreamError | Exclude<E, SessionFailure>> => {
      const key = new PoolKey(poolKeyOf(target, digestKey), target)
      // Only a failure needs the scrubber: made then, not on every call.
      let scrubber: ((text: string) => string) | undefined
      const scrub = (text: string) => {
        scrubber ??= makeScrubber(secretsOf(target))
        return scrubber(text)
      }
      const once = Effect.scoped(
        Effect.gen(function* () {
          const session = yield* acquire(key)
          const context = (operation: string): Context => ({
            operation: scrub(`${operation} on ${describeTarget(target)}`),
            phase: "session",
            scrub,
            get stderr() {
              return session.stderr?.value
            }
          })
          return yield* use(session, context).pipe(
            Effect.tapError((e) => (e._tag === "SessionFailure" && !e.healthy ? markBroken(session, key) : Effect.void))
          )
        })
      )
      return once.pipe(
        Effect.catchIf(
          (e): e is SessionFailure => e._tag === "SessionFailure" && e.phase === "session" && retry(e),
          () => once
        ),
        Effect.mapError((e) => (e._tag === "SessionFailure" ? e.error : (e as Exclude<E, SessionFailure>)))
      )
    }

    /** The session's tools: cached, or fetched page by page (and cached unless the list changed meanwhile). */
    const toolsOf = (session: Session.Session, context: (operation: string) => Context) =>
      Effect.gen(function* () {
        const cached = session.tools
        if (cached !== undefined) return { cached, fresh: false }
        const version = session.toolsVersion
        const tools: Array<McpTool> = []
        const seen = new Set<string>()
        let cursor: string | undefined
        for (let page = 0; ; page++) {
          const params = cursor === undefined ? undefined : { cursor }
          const result = yield* Effect.tryPromise({
            try: (signal) => session.client.listTools(params, { signal, timeout: listTimeoutMillis }),
            catch: (cause) => classify(cause, context("tools/list"))
          })
          for (const tool of result.tools) tools.push(toTool(tool))
          cursor = result.nextCursor
          if (cursor === undefined) break
          if (seen.has(cursor) || page + 1 >= MAX_PAGES) {
            return yield* Effect.fail(
              classify(new Error("the server's tools/list pages do not end"), context("tools/list"))
            )
          }
          seen.add(cursor)
        }
        const fresh: Session.CachedTools = { tools, checks: new Map() }
        if (session.toolsVersion === version) session.tools = fresh
        return { cached: fresh, fresh: true }
      })

    const listTools = Effect.fn("McpUpstream.listTools")(function* (target: McpTarget) {
      // Listing is idempotent: after a failure that broke the session, once more on a fresh one.
      const { cached } = yield* withSession(target, toolsOf, (failure) => !failure.healthy)
      return cached.tools
    })

    const callTool = Effect.fnUntraced(function* (
      target: McpTarget,
      name: string,
      args: Readonly<Record<string, unknown>>,
      callOptions: CallOptions = {}
    ) {
      return yield* withSession(
        target,
        (session, context) =>
          Effect.gen(function* () {
            const first = yield* toolsOf(session, context)
            let cached = first.cached
            let tool = cached.tools.find((t) => t.name === name)
            if (tool === undefined && !first.fresh) {
              // The cached list may be stale when the server does not announce changes.
              session.tools = undefined
              ;({ cached } = yield* toolsOf(session, context))
              tool = cached.tools.find((t) => t.name === name)
            }
            if (tool === undefined) {
              return yield* new ValidationFailed({
                message: `the MCP server has no tool named "${name}"`,
                details: { issues: [{ path: "tool", message: `unknown tool "${name}"` }] }
              })
            }
            let check = cached.checks.get(name)
            if (check === undefined) {
              check = checkArguments(session.validator, tool.inputSchema)
              cached.checks.set(name, check)
            }
            const issues = check(args)
            if (issues.length > 0) return yield* Validation.validationFailed(`arguments for tool ${name}`, issues)
            const onProgress = callOptions.onProgress
            const result = yield* Effect.tryPromise({
              try: (signal) =>
                session.client.callTool({ name, arguments: { ...args } }, undefined, {
                  signal,
                  timeout: callOptions.timeoutMillis ?? callTimeoutMillis,
                  resetTimeoutOnProgress: callOptions.resetTimeoutOnProgress ?? true,
                  ...(callOptions.maxTotalTimeoutMillis === undefined
                    ? {}
                    : { maxTotalTimeout: callOptions.maxTotalTimeoutMillis }),
                  ...(onProgress === undefined
                    ? {}
                    : {
                        onprogress: (p) => {
                          try {
                            onProgress({
                              progress: p.progress,
                              ...(p.total === undefined ? {} : { total: p.total }),
                              ...(p.message === undefined ? {} : { message: p.message })
                            })
                          } catch {
                            // a failing progress callback must not break the call
                          }
                        }
                      })
                }),
              catch: (cause) => classify(cause, context(`tools/call ${name}`))
            })
            return toResult(result as CallToolResult)
          }),
        // A call may have run upstream: retried only when it certainly never reached the server.
        (failure) => failure.notSent
      )
    })

    return McpUpstream.of({
      listTools,
      callTool,
      toolsChanged: Stream.fromPubSub(changes)
    })
  })

/** The MCP upstream on the SDK client; needs the `Resolver` the SSRF guard resolves hosts with. */
export const layer = (options: Options = {}): Layer.Layer<McpUpstream, never, Resolver> =>
  Layer.effect(McpUpstream, make(options))
