/**
 * Keeping credentials out of what the MCP adapter says: a scrubber that blanks every secret a target
 * carries (header, query and env values, and the token part of `Bearer …`-style values) from error
 * messages and captured stderr; the pool key, a keyed digest of the credential-bearing fields; and a
 * bounded stderr buffer that scrubs as it captures.
 */
import type { McpTarget } from "@switchboard/core/McpUpstream"
import * as Redacted from "effect/Redacted"
import { createHmac } from "node:crypto"
import { scrubberWith, secretForms } from "../../internal/scrub.ts"

const REDACTED = "<redacted>"

const revealAll = (values: Readonly<Record<string, Redacted.Redacted<string>>> | undefined): Array<string> =>
  Object.values(values ?? {}).map((v) => Redacted.value(v))

/** Every secret string a target carries, in every form it may be echoed in (`secretForms`). */
export const secretsOf = (target: McpTarget): ReadonlyArray<string> =>
  secretForms([
    ...(target._tag === "Http" ? [...revealAll(target.headers), ...revealAll(target.query)] : revealAll(target.env)),
    ...(target.secrets ?? []).map((v) => Redacted.value(v))
  ])

/** Replace every secret in a text with `<redacted>`. */
export const makeScrubber = scrubberWith(REDACTED)

/**
 * The pool key of a target: its `key` plus a digest, under a per-process key, of everything that reaches the
 * server, so a rotated credential or a changed URL or command gets a new session.
 */
export const poolKeyOf = (target: McpTarget, digestKey: Uint8Array): string => {
  const sorted = (values: Readonly<Record<string, Redacted.Redacted<string>>> | undefined) =>
    Object.entries(values ?? {})
      .map(([k, v]) => [k, Redacted.value(v)] as const)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  const material =
    target._tag === "Http"
      ? ["http", target.url, sorted(target.headers), sorted(target.query), target.allowPrivateNetwork]
      : ["stdio", target.program, target.args, sorted(target.env)]
  const digest = createHmac("sha256", digestKey).update(JSON.stringify(material)).digest("base64url")
  return `${target.key}#${digest}`
}

/** The last `limit` characters a child wrote to stderr, scrubbed of secrets as they arrive. */
export class StderrTail {
  private text = ""
  private readonly limit: number
  private readonly scrub: (text: string) => string
  constructor(limit: number, scrub: (text: string) => string) {
    this.limit = limit
    this.scrub = scrub
  }
  append(chunk: Buffer | string): void {
    // Scrubbing the joined text also catches a secret split across two chunks.
    const joined = this.scrub(this.text + chunk.toString())
    this.text = joined.length > this.limit ? joined.slice(joined.length - this.limit) : joined
  }
  /** The captured text, trimmed; empty when nothing was written. */
  get value(): string {
    return this.text.trim()
  }
}
