/**
 * Secrets in the MCP adapter: what the scrubber blanks (values, the token part of `Bearer …`, URL-encoded
 * forms), the bounded stderr buffer that scrubs secrets split across chunks, and pool keys that change
 * when a credential rotates but never contain it.
 */
import { assert, describe, it } from "@effect/vitest"
import type { McpTarget } from "@switchboard/core/McpUpstream"
import * as Redacted from "effect/Redacted"
import { makeScrubber, poolKeyOf, secretsOf, StderrTail } from "../../src/mcp/internal/secrets.ts"

const http = (token: string, extra: Partial<Extract<McpTarget, { _tag: "Http" }>> = {}): McpTarget => ({
  _tag: "Http",
  key: "conn_1",
  url: "https://mcp.example.com/mcp",
  headers: { Authorization: Redacted.make(`Bearer ${token}`), "X-Team": Redacted.make("ab") },
  query: { key: Redacted.make("q&secret") },
  allowPrivateNetwork: false,
  ...extra
})

const stdio = (token: string): McpTarget => ({
  _tag: "Stdio",
  key: "conn_2",
  program: "node",
  args: ["server.js"],
  env: { TOKEN: Redacted.make(token) }
})

describe("scrubbing", () => {
  it("blanks header values, their token part, query values and their URL-encoded form", () => {
    const scrub = makeScrubber(secretsOf(http("tok-123456")))
    assert.strictEqual(
      scrub("sent Bearer tok-123456; echoed tok-123456; query q&secret or q%26secret; team ab"),
      "sent <redacted>; echoed <redacted>; query <redacted> or <redacted>; team ab"
    )
  })

  it("blanks env values of local programs", () => {
    assert.strictEqual(makeScrubber(secretsOf(stdio("ghp_abcdef")))("TOKEN=ghp_abcdef"), "TOKEN=<redacted>")
  })

  it("the stderr buffer scrubs a secret split across chunks and keeps only the tail", () => {
    const tail = new StderrTail(40, makeScrubber(["s3cr3t-value"]))
    tail.append("token: s3cr")
    tail.append(Buffer.from("3t-value\n"))
    assert.strictEqual(tail.value, "token: <redacted>")
    tail.append("x".repeat(100))
    assert.strictEqual(tail.value.length, 40)
  })
})

describe("pool keys", () => {
  const digestKey = new Uint8Array(32).fill(7)

  it("are stable for the same inputs, change when a credential rotates, and never hold it", () => {
    const a = poolKeyOf(http("first-token"), digestKey)
    assert.strictEqual(a, poolKeyOf(http("first-token"), digestKey))
    assert.notStrictEqual(a, poolKeyOf(http("second-token"), digestKey))
    assert.notStrictEqual(a, poolKeyOf(http("first-token", { url: "https://other.example.com/mcp" }), digestKey))
    assert.notStrictEqual(poolKeyOf(stdio("one"), digestKey), poolKeyOf(stdio("two"), digestKey))
    assert.isTrue(a.startsWith("conn_1#"))
    assert.notInclude(a, "first-token")
  })

  it("depend on the per-process key", () => {
    assert.notStrictEqual(poolKeyOf(http("t"), digestKey), poolKeyOf(http("t"), new Uint8Array(32)))
  })
})
