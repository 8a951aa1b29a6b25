/**
 * A `fetch` for the MCP SDK's HTTP transports that goes through the shared SSRF guard: every request (each
 * redirect hop too: the SDK follows same-origin redirects by calling it again, and it never follows one
 * itself) resolves the host once through `Ssrf.resolve`, checks every address, and connects to the checked
 * address only (a pinned `lookup`), so a rebinding answer cannot move the connection. Built on `node:http`
 * because the global fetch offers no way to pin the address. Sockets are kept alive in agents owned by one
 * session, so a socket opened under one connection's policy never serves another.
 *
 * One `pinnedFetch` serves one session, under one policy: a host's checked address is kept for the session's
 * life, so later requests (every `tools/call`) go to the address already checked, and already connected to by
 * the session's kept-alive socket, without another lookup. A new session (after a failure, or idle expiry)
 * resolves again.
 */
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js"
import { Resolver } from "@switchboard/core/Resolver"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Http from "node:http"
import * as Https from "node:https"
import type * as Net from "node:net"
import * as Ssrf from "../../http/Ssrf.ts"

/** The keep-alive agents of one session; `destroy` closes their sockets. */
export interface Agents {
  readonly http: Http.Agent
  readonly https: Https.Agent
  readonly destroy: () => void
}

export const makeAgents = (): Agents => {
  const http = new Http.Agent({ keepAlive: true })
  const https = new Https.Agent({ keepAlive: true })
  return {
    http,
    https,
    destroy: () => {
      http.destroy()
      https.destroy()
    }
  }
}

/** A lookup that answers with the checked address only. */
const pinnedLookup =
  (address: string, family: 4 | 6): Net.LookupFunction =>
  (_hostname, options, callback) => {
    if (options.all === true) callback(null, [{ address, family }])
    else callback(null, address, family)
  }

const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304])

const bodyOf = (body: RequestInit["body"]): string | Uint8Array | undefined => {
  if (body === undefined || body === null) return undefined
  if (typeof body === "string" || body instanceof Uint8Array) return body
  throw new TypeError("the MCP transport sent a body type this fetch does not support")
}

export interface PinnedFetchOptions {
  readonly resolver: Resolver["Service"]
  readonly allowPrivateNetwork: boolean
  readonly agents: Agents
}

/**
 * A response body as a web stream, without `Readable.toWeb`'s general adapter (a fair share of a call's time):
 * chunks are handed over as they arrive, the response is paused while the stream's queue is full, a response cut
 * off before its end errors the stream, and cancelling the stream destroys the response.
 */
const webBodyOf = (response: Http.IncomingMessage): ReadableStream<Uint8Array> => {
  let settled = false
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        response.on("data", (chunk: Buffer) => {
          if (settled) return
          controller.enqueue(chunk)
          if ((controller.desiredSize ?? 1) <= 0) response.pause()
        })
        response.once("end", () => {
          if (settled) return
          settled = true
          controller.close()
        })
        const fail = (error: Error) => {
          if (settled) return
          settled = true
          controller.error(error)
        }
        response.once("error", fail)
        response.once("close", () => fail(new Error("the response was cut off before its end")))
      },
      pull() {
        response.resume()
      },
      cancel() {
        settled = true
        response.destroy()
      }
    },
    { highWaterMark: 16 }
  )
}

/** `fetch` through the SSRF guard; rejects with the guard's `UpstreamError` when a destination is refused. */
export const pinnedFetch = (options: PinnedFetchOptions): FetchLike => {
  /** The checked address of each host this session reached (always the first one `Ssrf.resolve` answered). */
  const checked = new Map<string, Ssrf.Pinned["address"]>()
  const resolve = (raw: string): Ssrf.Pinned | Promise<Ssrf.Pinned> => {
    const target = Ssrf.parseTarget(raw)
    const address = Result.isSuccess(target) ? checked.get(target.success.hostname) : undefined
    if (Result.isSuccess(target) && address !== undefined) {
      return { ...target.success, addresses: [address], address }
    }
    // The first request to a host, or a URL the guard refuses: the guard's own path, with its own errors.
    return Effect.runPromise(
      Ssrf.resolve(raw, { allowPrivateNetwork: options.allowPrivateNetwork }).pipe(
        Effect.provideService(Resolver, options.resolver)
      )
    ).then((pinned) => {
      checked.set(pinned.hostname, pinned.address)
      return pinned
    })
  }
  return async (input, init) => {
    const pinned = await resolve(String(input))
    const body = bodyOf(init?.body)
    const headers: Record<string, string> = {}
    new Headers(init?.headers).forEach((value, name) => {
      headers[name] = value
    })
    return new Promise<Response>((resolve, reject) => {
      const request = (pinned.secure ? Https : Http).request(
        pinned.url,
        {
          method: init?.method ?? "GET",
          headers,
          agent: pinned.secure ? options.agents.https : options.agents.http,
          lookup: pinnedLookup(pinned.address.address, pinned.address.family),
          ...(init?.signal === undefined || init.signal === null ? {} : { signal: init.signal })
        },
        (response) => {
          const status = response.statusCode ?? 502
          const responseHeaders = new Headers()
          for (const [name, value] of Object.entries(response.headers)) {
            if (value === undefined) continue
            for (const item of Array.isArray(value) ? value : [value]) responseHeaders.append(name, item)
          }
          const nullBody = NULL_BODY_STATUSES.has(status) || init?.method === "HEAD"
          if (nullBody) response.resume()
          resolve(
            new Response(nullBody ? null : webBodyOf(response), {
              status,
              statusText: response.statusMessage ?? "",
              headers: responseHeaders
            })
          )
        }
      )
      request.once("error", reject)
      request.end(body)
    })
  }
}
