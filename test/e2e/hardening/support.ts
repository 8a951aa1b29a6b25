/**
 * Raw HTTP over the daemon's socket for the hardening suites: any method, path, headers and body bytes (a body
 * that is not JSON, a lying content-type, a chunked body), with every response kept for the checks that follow.
 */
import * as Http from "node:http"

export interface Raw {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly text: string
}

export interface Send {
  readonly method: string
  readonly path: string
  readonly body?: string | Buffer | undefined
  readonly headers?: Record<string, string> | undefined
  /** Send the body chunked (no content-length). */
  readonly chunked?: boolean | undefined
}

/** One request; resolves with what came back, or rejects when the connection broke. */
export const send = (socketPath: string, req: Send, timeoutMs = 15_000) =>
  new Promise<Raw>((resolve, reject) => {
    const headers: Record<string, string> = { host: "switchboard", ...req.headers }
    if (req.body !== undefined && !req.chunked) headers["content-length"] = String(Buffer.byteLength(req.body))
    // Node's client frames GET and DELETE bodies only when asked to.
    if (req.body !== undefined && req.chunked) headers["transfer-encoding"] = "chunked"
    if (req.body !== undefined && headers["content-type"] === undefined) headers["content-type"] = "application/json"
    const r = Http.request({ socketPath, method: req.method, path: req.path, headers, agent: false }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (chunk: Buffer) => chunks.push(chunk))
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") })
      )
      res.on("error", reject)
    })
    r.setTimeout(timeoutMs, () => r.destroy(new Error(`no answer to ${req.method} ${req.path} in ${timeoutMs} ms`)))
    r.on("error", reject)
    if (req.body !== undefined) {
      if (req.chunked) {
        const buf = Buffer.isBuffer(req.body) ? req.body : Buffer.from(req.body)
        for (let i = 0; i < buf.length; i += 64 * 1024) r.write(buf.subarray(i, i + 64 * 1024))
      } else r.write(req.body)
    }
    r.end()
  })

export const json = (raw: Raw): any => {
  try {
    return JSON.parse(raw.text)
  } catch {
    return undefined
  }
}

/** Whether a response is in the one error shape `{"error": {"code": string, "message": string}}`. */
export const isErrorShape = (raw: Raw): boolean => {
  const body = json(raw)
  return (
    typeof body === "object" &&
    body !== null &&
    typeof body.error?.code === "string" &&
    typeof body.error?.message === "string" &&
    (raw.headers["content-type"] ?? "").startsWith("application/json")
  )
}
