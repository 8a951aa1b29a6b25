/**
 * How failures of the SDK, the transports and the network become `UpstreamError`s: reasons, whether the
 * session survives, whether the request certainly never reached the server (the only case a tool call is
 * retried), and messages scrubbed of secrets with a local program's stderr attached.
 */
import { assert, describe, it } from "@effect/vitest"
import { StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import { ErrorCode, McpError } from "@modelcontextprotocol/sdk/types.js"
import { UpstreamError } from "@switchboard/core/Errors"
import { classify, type Context, describe as describeError } from "../../src/mcp/internal/failures.ts"
import { makeScrubber } from "../../src/mcp/internal/secrets.ts"

const session: Context = { operation: "tools/call x", phase: "session", scrub: makeScrubber(["sekrit-value"]) }
const connect: Context = { ...session, operation: "connecting", phase: "connect" }

const refused = () => {
  const cause = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9"), { code: "ECONNREFUSED" })
  return new TypeError("fetch failed", { cause })
}

describe("classify", () => {
  it("a refused connection: unreachable, never sent", () => {
    const f = classify(refused(), session)
    assert.strictEqual(f.error.reason, "upstream_unreachable")
    assert.strictEqual(f.error.message, "tools/call x failed: fetch failed: connect ECONNREFUSED 127.0.0.1:9")
    assert.isTrue(f.notSent)
    assert.isFalse(f.healthy)
  })

  it("a connection dropped mid-request: unreachable, maybe sent", () => {
    const cause = Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" })
    const f = classify(new TypeError("fetch failed", { cause }), session)
    assert.strictEqual(f.error.reason, "upstream_unreachable")
    assert.isFalse(f.notSent)
  })

  it("JSON-RPC errors from the server keep the session; timeouts and closed connections do not", () => {
    const invalid = classify(new McpError(ErrorCode.InvalidParams, "bad"), session)
    assert.strictEqual(invalid.error.reason, "upstream_protocol_error")
    assert.deepStrictEqual(invalid.error.details, { operation: "tools/call x", mcp_code: -32602 })
    assert.isTrue(invalid.healthy)
    const timeout = classify(new McpError(ErrorCode.RequestTimeout, "Request timed out"), session)
    assert.strictEqual(timeout.error.reason, "upstream_timeout")
    assert.isFalse(timeout.healthy)
    const closed = classify(new McpError(ErrorCode.ConnectionClosed, "Connection closed"), session)
    assert.strictEqual(closed.error.reason, "upstream_unreachable")
    assert.isFalse(closed.notSent)
  })

  it("HTTP statuses: 404 on a session means it was forgotten (not sent), 5xx unreachable, 4xx protocol", () => {
    const gone = classify(new StreamableHTTPError(404, "Session not found"), session)
    assert.isTrue(gone.notSent)
    assert.deepStrictEqual(gone.error.details, { operation: "tools/call x", http_status: 404 })
    assert.isFalse(classify(new StreamableHTTPError(404, "Not found"), connect).notSent)
    assert.strictEqual(classify(new StreamableHTTPError(503, "busy"), session).error.reason, "upstream_unreachable")
    assert.strictEqual(classify(new StreamableHTTPError(401, "no"), connect).error.reason, "upstream_protocol_error")
  })

  it("the SSRF guard's refusals keep their reason and details and were never sent; unknowns go by phase", () => {
    const refusal = new UpstreamError({
      reason: "destination_refused",
      message: "refused 127.0.0.1 (loopback) for host localhost",
      details: { rule: "loopback" }
    })
    const f = classify(new Error("wrapped", { cause: refusal }), connect)
    assert.strictEqual(f.error.reason, "destination_refused")
    assert.isTrue(f.notSent)
    assert.deepStrictEqual(f.error.details, { operation: "connecting", rule: "loopback" })
    assert.include(f.error.message, "refused 127.0.0.1 (loopback) for host localhost")
    assert.strictEqual(classify(new Error("weird"), connect).error.reason, "upstream_unreachable")
    assert.strictEqual(classify(new Error("weird"), session).error.reason, "upstream_protocol_error")
    assert.strictEqual(classify(new Error("Not connected"), session).notSent, true)
  })

  it("scrubs messages and appends a local program's stderr", () => {
    const f = classify(new Error("server said: token sekrit-value is bad"), {
      ...session,
      stderr: "boom with sekrit-value"
    })
    assert.strictEqual(
      f.error.message,
      "tools/call x failed: server said: token <redacted> is bad; stderr: boom with <redacted>"
    )
  })

  it("describe joins the causes once each", () => {
    assert.strictEqual(describeError(refused()), "fetch failed: connect ECONNREFUSED 127.0.0.1:9")
    assert.strictEqual(describeError(new AggregateError([new Error("a"), new Error("b")], "")), "a: b")
  })
})
