/**
 * Test support: a daemon server in process on a temporary socket (memory store), raw HTTP requests over the
 * socket (what curl --unix-socket does) that record every response for the canary scan, and temp directories.
 */
import * as Memory from "@switchboard/adapters/memory"
import * as Principal from "@switchboard/core/Principal"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Server from "../src/Server.ts"

/** A fresh private temp directory (short, so socket paths fit). */
export const tempDir = (prefix = "sbd-"): string => Fs.mkdtempSync(Path.join(Os.tmpdir(), prefix))

export interface RawResponse {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly text: string
  readonly json: any
}

export interface RawOptions {
  readonly body?: string | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
}

/** One HTTP request over a Unix socket, like `curl --unix-socket`. */
export const rawRequest = (socketPath: string, method: string, path: string, options: RawOptions = {}) =>
  new Promise<RawResponse>((resolve, reject) => {
    const headers: Record<string, string> = { host: "switchboard", ...options.headers }
    if (options.body !== undefined) {
      headers["content-type"] ??= "application/json"
      headers["content-length"] = String(Buffer.byteLength(options.body))
    }
    const req = Http.request({ socketPath, method, path, headers, agent: false }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (chunk: Buffer) => chunks.push(chunk))
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8")
        let json: unknown
        try {
          json = text === "" ? undefined : JSON.parse(text)
        } catch {
          json = undefined
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json })
      })
      res.on("error", reject)
    })
    req.on("error", reject)
    if (options.body !== undefined) req.write(options.body)
    req.end()
  })

/** A raw client that keeps every response (status line, headers, body) for later scanning. */
export const recorder = (socketPath: string) => {
  const seen: Array<RawResponse> = []
  const request = (method: string, path: string, options: RawOptions = {}) =>
    Effect.promise(() => rawRequest(socketPath, method, path, options)).pipe(
      Effect.tap((res) => Effect.sync(() => seen.push(res)))
    )
  const json = (method: string, path: string, body: unknown, headers?: Record<string, string>) =>
    request(method, path, { body: JSON.stringify(body), headers })
  return { seen, request, json }
}

/** The text of every recorded response: status, each header, and the body. */
export const responseTexts = (responses: ReadonlyArray<RawResponse>): ReadonlyArray<string> =>
  responses.flatMap((r) => [String(r.status), JSON.stringify(r.headers), r.text])

/** The in-process server on `socket` over a fresh memory store. */
export const serverLayer = (
  socket: string,
  options: { readonly trustHeaders?: boolean; readonly principal?: Principal.Principal } = {}
) =>
  Server.layer({
    socket,
    trustHeaders: options.trustHeaders ?? true,
    principal: options.principal ?? Principal.local("tester"),
    logRequests: false,
    shutdownTimeout: "1 second"
  }).pipe(Layer.provide(Switchboard.layer), Layer.provide(Layer.fresh(Memory.layer)))

export const viewerHeaders = { "x-switchboard-user": "val", "x-switchboard-role": "viewer" }
export const editorHeaders = { "x-switchboard-user": "eddie", "x-switchboard-role": "editor" }

export const apiKeyConnector = {
  name: "acme-api",
  display_name: "Acme API",
  auth_patterns: [
    {
      type: "API_KEY",
      display_name: "API key",
      fields: [
        { field_name: "api_key", label: "API key", input_type: "password", required: true },
        { field_name: "domain", label: "Domain", input_type: "text", required: true }
      ],
      auth_header_key_override: "X-API-Key"
    }
  ],
  proxy_url: "https://{{domain}}/api/v1",
  proxy_enabled: true
} as const
