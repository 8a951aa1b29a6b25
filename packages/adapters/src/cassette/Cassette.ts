/**
 * Cassettes: what `--record` wrote and `--replay` serves back. One pretty-printed JSON file per connection
 * (`<dir>/<connection name>.json`), so a recording diffs line by line in review. Each interaction is an HTTP
 * exchange of the proxy (request: method, path, query, selected headers, body digest and, for JSON or text up to
 * `maxStoredRequestBody`, the body itself; response: status, headers, body as text or base64) or an MCP operation
 * (`tools/list` → tools, `tools/call` name + arguments → result), or the error either one failed with.
 *
 * Matching keys: method, path, query (sorted, secret parameters left out) and the digest of the body (JSON
 * canonicalised, so key order does not matter) for HTTP; the tool name and canonical arguments for MCP.
 * Secrets never reach a file: every value the recorder learns is a secret is replaced by `[REDACTED]` wherever it
 * appears (headers, query, paths, bodies, results, error messages), and `Set-Cookie` is always redacted.
 */
import { canonicalJson } from "@switchboard/core/Canonical"
import { UpstreamError, ValidationFailed } from "@switchboard/core/Errors"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { sha256 } from "../internal/digest.ts"
import { scrubberWith, secretForms } from "../internal/scrub.ts"

export const REDACTED = "[REDACTED]"
export const FORMAT = "switchboard-cassette"
export const VERSION = 1

/** Request bodies longer than this are matched by digest only (the text is not kept). */
export const maxStoredRequestBody = 64 * 1024

/** A cassette directory could not be read or written, or holds a file that is not a cassette. */
export class CassetteError extends Schema.TaggedError<CassetteError>()("CassetteError", {
  reason: Schema.Literals(["cassette_unreadable", "cassette_invalid", "cassette_unwritable"]),
  message: Schema.String,
  cause: Schema.optionalKey(Schema.Defect())
}) {
  get code() {
    return this.reason
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Format

const Json = Schema.Unknown

export const Body = Schema.Struct({
  /** SHA-256 (hex) of the body as matched: canonical JSON for JSON bodies, else the bytes (after redaction). */
  sha256: Schema.optionalKey(Schema.String),
  size: Schema.Number,
  json: Schema.optionalKey(Json),
  text: Schema.optionalKey(Schema.String),
  base64: Schema.optionalKey(Schema.String)
})
export type Body = typeof Body.Type

export const ErrorRecord = Schema.Struct({
  tag: Schema.Literals(["UpstreamError", "ValidationFailed"]),
  code: Schema.String,
  message: Schema.String,
  details: Schema.optionalKey(Json)
})
export type ErrorRecord = typeof ErrorRecord.Type

export const HttpRequest = Schema.Struct({
  method: Schema.String,
  /** The path on the upstream (below its origin), without the query. */
  path: Schema.String,
  query: Schema.Array(Schema.Tuple([Schema.String, Schema.String])),
  headers: Schema.Record(Schema.String, Schema.String),
  body: Schema.optionalKey(Body)
})
export type HttpRequest = typeof HttpRequest.Type

export const HttpResponse = Schema.Struct({
  status: Schema.Number,
  headers: Schema.Record(Schema.String, Schema.String),
  body: Body
})
export type HttpResponse = typeof HttpResponse.Type

export const HttpInteraction = Schema.Struct({
  type: Schema.Literal("http"),
  /** Where it went (scheme and host), for people reading the file; not matched, so a rendered host may change. */
  origin: Schema.String,
  request: HttpRequest,
  response: Schema.optionalKey(HttpResponse),
  error: Schema.optionalKey(ErrorRecord)
})
export type HttpInteraction = typeof HttpInteraction.Type

export const ListToolsInteraction = Schema.Struct({
  type: Schema.Literal("mcp.tools/list"),
  tools: Schema.optionalKey(Schema.Array(Json)),
  error: Schema.optionalKey(ErrorRecord)
})
export type ListToolsInteraction = typeof ListToolsInteraction.Type

export const CallToolInteraction = Schema.Struct({
  type: Schema.Literal("mcp.tools/call"),
  name: Schema.String,
  arguments: Json,
  result: Schema.optionalKey(Json),
  error: Schema.optionalKey(ErrorRecord)
})
export type CallToolInteraction = typeof CallToolInteraction.Type

export const Interaction = Schema.Union([HttpInteraction, ListToolsInteraction, CallToolInteraction])
export type Interaction = typeof Interaction.Type

export const File = Schema.Struct({
  format: Schema.Literal(FORMAT),
  version: Schema.Literal(VERSION),
  connection: Schema.String,
  interactions: Schema.Array(Interaction)
})
export type File = typeof File.Type

// ---------------------------------------------------------------------------------------------------------------
// Files

/** The file of a connection: its name when that is a safe file name (connection names are slugs), else encoded. */
export const fileName = (connection: string): string =>
  /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/u.test(connection) && !connection.endsWith(".")
    ? `${connection}.json`
    : `${encodeURIComponent(connection).replace(/\./gu, "%2E").slice(0, 200)}.json`

/** Write one cassette atomically (a temporary file renamed over the old one). */
export const write = (dir: string, file: File): void => {
  const target = Path.join(dir, fileName(file.connection))
  const temporary = `${target}.${process.pid}.tmp`
  Fs.writeFileSync(temporary, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 })
  Fs.renameSync(temporary, target)
}

const decodeFile = Schema.decodeUnknownSync(File)

/** Every cassette of a directory, by connection name. */
export const readAll = (dir: string): Map<string, File> => {
  let names: Array<string>
  try {
    names = Fs.readdirSync(dir).filter((n) => n.endsWith(".json"))
  } catch (cause) {
    throw new CassetteError({
      reason: "cassette_unreadable",
      message: `cannot read the cassette directory ${dir}`,
      cause
    })
  }
  const out = new Map<string, File>()
  for (const name of names.sort()) {
    const path = Path.join(dir, name)
    let parsed: File
    try {
      parsed = decodeFile(JSON.parse(Fs.readFileSync(path, "utf8")))
    } catch (cause) {
      throw new CassetteError({
        reason: "cassette_invalid",
        message: `${path} is not a Switchboard cassette (format ${FORMAT}, version ${VERSION})`,
        cause
      })
    }
    out.set(parsed.connection, parsed)
  }
  return out
}

// ---------------------------------------------------------------------------------------------------------------
// Canonical forms and keys

const textual = (contentType: string | undefined) =>
  contentType === undefined ||
  /^text\/|[/+]json\b|[/+]xml\b|^application\/(x-www-form-urlencoded|javascript|graphql)/iu.test(contentType)

const isUtf8 = (bytes: Uint8Array): string | undefined => {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes)
  } catch {
    return undefined
  }
}

/**
 * A body as kept in a cassette, scrubbed of secrets: JSON (parsed) when it parses, else text when it is UTF-8 of a
 * textual type, else base64. `limit` leaves out the content (the digest stays) of longer bodies.
 */
export const bodyOf = (
  bytes: Uint8Array,
  contentType: string | undefined,
  scrub: (text: string) => string,
  limit = Number.POSITIVE_INFINITY
): Body => {
  const text = textual(contentType) ? isUtf8(bytes) : undefined
  if (text !== undefined) {
    const clean = scrub(text)
    let json: unknown
    let isJson = false
    if (clean.trim() !== "") {
      try {
        json = JSON.parse(clean)
        isJson = true
      } catch {
        isJson = false
      }
    }
    const digest = sha256(isJson ? canonicalJson(json) : clean)
    if (bytes.length > limit) return { sha256: digest, size: bytes.length }
    // Parsed JSON reads best in a diff, but only when writing it back gives the same bytes (replay sends these).
    return isJson && JSON.stringify(json) === clean
      ? { sha256: digest, size: bytes.length, json }
      : { sha256: digest, size: bytes.length, text: clean }
  }
  // Binary: secrets are looked for in the bytes read as Latin-1, which maps every byte to one character.
  const latin1 = Buffer.from(bytes).toString("latin1")
  const clean = scrub(latin1)
  const cleanBytes = clean === latin1 ? Buffer.from(bytes) : Buffer.from(clean, "latin1")
  const digest = sha256(cleanBytes)
  if (bytes.length > limit) return { sha256: digest, size: bytes.length }
  return { sha256: digest, size: bytes.length, base64: cleanBytes.toString("base64") }
}

/** The bytes a recorded response body stands for. */
export const bytesOf = (body: Body): Uint8Array =>
  body.base64 !== undefined
    ? new Uint8Array(Buffer.from(body.base64, "base64"))
    : body.text !== undefined
      ? new TextEncoder().encode(body.text)
      : body.json !== undefined
        ? new TextEncoder().encode(JSON.stringify(body.json))
        : new Uint8Array(0)

/** The query as matched: pairs sorted by name, then value, without the parameters that carry secrets. */
export const matchQuery = (
  query: ReadonlyArray<readonly [string, string]>,
  secretNames: ReadonlySet<string>
): string => {
  const kept = query.filter(([name, value]) => !secretNames.has(name) && value !== REDACTED)
  kept.sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
  return new URLSearchParams(kept.map(([k, v]): [string, string] => [k, v])).toString()
}

export const httpKey = (method: string, path: string, query: string, bodySha256: string | undefined): string =>
  `${method.toUpperCase()} ${path}${query === "" ? "" : `?${query}`} body=${bodySha256 ?? "-"}`

export const listToolsKey = "tools/list"

export const callToolKey = (name: string, args: unknown): string => `tools/call ${name} ${canonicalJson(args)}`

// ---------------------------------------------------------------------------------------------------------------
// Secrets

/** Every form a secret may be echoed in (see `secretForms`). */
export const formsOf = secretForms

/** Replace every secret (longest first) by `[REDACTED]`. */
export const scrubber = scrubberWith(REDACTED)

/** Scrub every string inside a JSON value. */
export const scrubJson = (value: unknown, scrub: (text: string) => string): unknown => {
  if (typeof value === "string") return scrub(value)
  if (Array.isArray(value)) return value.map((v) => scrubJson(v, scrub))
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[scrub(k)] = scrubJson(v, scrub)
    return out
  }
  return value
}

// ---------------------------------------------------------------------------------------------------------------
// Errors

/** A failure as kept in a cassette (scrubbed). */
export const errorRecordOf = (
  error: UpstreamError | ValidationFailed,
  scrub: (text: string) => string
): ErrorRecord => ({
  tag: error._tag,
  code: error.code,
  message: scrub(error.message),
  ...(error.details === undefined ? {} : { details: scrubJson(error.details, scrub) })
})

const upstreamReasons: ReadonlySet<string> = new Set(UpstreamError.fields.reason.literals)

/** The failure a recorded error stands for. */
export const errorOf = (record: ErrorRecord): UpstreamError | ValidationFailed => {
  const details = record.details as Record<string, unknown> | undefined
  if (record.tag === "ValidationFailed") {
    return new ValidationFailed({ message: record.message, ...(details === undefined ? {} : { details }) })
  }
  return new UpstreamError({
    reason: (upstreamReasons.has(record.code) ? record.code : "upstream_protocol_error") as UpstreamError["reason"],
    message: record.message,
    ...(details === undefined ? {} : { details })
  })
}
