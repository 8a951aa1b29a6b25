/**
 * Shared by the record/replay tests: canaries, a REST upstream on 127.0.0.1 that echoes the credentials it was
 * sent (so a recording that keeps them would show them), and a scan of a cassette directory for the canaries.
 */
import * as Fs from "node:fs"
import * as Http from "node:http"
import type * as Net from "node:net"
import * as Path from "node:path"

export const CANARY_TOKEN = "sbcanaryTOKEN7Hq2Vx9Lm3"
export const CANARY_KEY = "sbcanaryKEY4Rt8Wz1Pn6"
export const CANARY_HEADER = "sbcanaryHDR2Kd5Yc8Js1"
export const CANARY_MCP = "sbcanaryMCP9Fb3Gt6Xq4"
export const canaries = [CANARY_TOKEN, CANARY_KEY, CANARY_HEADER, CANARY_MCP]

export interface EchoServer {
  readonly origin: string
  /** Requests received, in order. */
  readonly hits: Array<string>
  readonly stop: () => Promise<void>
}

/**
 * Answers every request with JSON echoing the method, path, the auth it got (Authorization, `x-secret`, query
 * `key`), the body, and a counter that grows with each request; it sets a cookie holding the bearer token.
 */
export const startEchoServer = (): Promise<EchoServer> =>
  new Promise((resolve) => {
    const hits: Array<string> = []
    const server = Http.createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => {
        const url = new URL(req.url ?? "/", "http://127.0.0.1")
        hits.push(`${req.method} ${url.pathname}`)
        const body = JSON.stringify({
          method: req.method,
          path: url.pathname,
          authorization: req.headers.authorization ?? null,
          secret_header: req.headers["x-secret"] ?? null,
          key: url.searchParams.get("key"),
          body: Buffer.concat(chunks).toString("utf8"),
          n: hits.length
        })
        res.setHeader("set-cookie", `sid=${(req.headers.authorization ?? "none").replace(/\s/gu, "_")}`)
        res.setHeader("content-type", "application/json")
        res.statusCode = url.pathname.endsWith("/missing") ? 404 : 200
        res.end(body)
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as Net.AddressInfo).port
      resolve({
        origin: `http://127.0.0.1:${port}`,
        hits,
        stop: () =>
          new Promise<void>((done) => {
            server.closeAllConnections()
            server.close(() => done())
          })
      })
    })
  })

/** Every file under a directory with its text. */
export const filesUnder = (dir: string): Array<{ readonly path: string; readonly text: string }> =>
  Fs.readdirSync(dir, { recursive: true, encoding: "utf8" })
    .map((name) => Path.join(dir, name))
    .filter((path) => Fs.statSync(path).isFile())
    .map((path) => ({ path, text: Fs.readFileSync(path, "utf8") }))

/** The canaries (raw, URL-encoded or base64) found anywhere under a directory. */
export const canariesIn = (dir: string): Array<string> => {
  const found: Array<string> = []
  for (const { path, text } of filesUnder(dir)) {
    for (const canary of canaries) {
      for (const form of [canary, encodeURIComponent(canary), Buffer.from(canary).toString("base64").slice(0, 16)]) {
        if (text.includes(form)) found.push(`${canary} in ${path}`)
      }
    }
  }
  return found
}
