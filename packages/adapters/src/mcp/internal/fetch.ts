/**
 * A `fetch` for the MCP SDK's HTTP transports that goes through the shared SSRF guard: every request (each
 * redirect hop too: the SDK follows same-origin redirects by calling it again, and it never follows one
 * itself) resolves the host once through `Ssrf.resolve`, checks every address, and connects to the checked
 * address only (a pinned `lookup`), so a rebinding answer cannot move the connection. Built on `node:http`
 * because the global fetch offers no way to pin the address. Sockets are kept alive in agents owned by one
 * session, so a socket opened under one connection's policy never serves another.
 */
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js"
import { Resolver } from "@switchboard/core/Resolver"
import * as Effect from "effect/Effect"
import * as Http from "node:http"
import * as Https from "node:https"
import type * as Net from "node:net"
import { Readable } from "node:stream"
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

/** `fetch` through the SSRF guard; rejects with the guard's `UpstreamError` when a destination is refused. */
export const pinnedFetch =
  (options: PinnedFetchOptions): FetchLike =>
  async (input, init) => {
    const pinned = await Effect.runPromise(
      Ssrf.resolve(String(input), { allowPrivateNetwork: options.allowPrivateNetwork }).pipe(
        Effect.provideService(Resolver, options.resolver)
      )
    )
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
            new Response(nullBody ? null : (Readable.toWeb(response) as ReadableStream<Uint8Array>), {
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
