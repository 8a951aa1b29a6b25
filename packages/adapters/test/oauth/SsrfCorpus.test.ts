/**
 * The SSRF corpus through every outbound request the OAuth client makes (ssrfCorpusRun.ts): a REST connector's
 * token endpoint (code exchange and refresh), `user_info_uri`, revocation endpoint and configured issuer's metadata
 * (read for the RFC 9207 check); an MCP server's URL (the
 * challenge), the `resource_metadata` of its challenge, the authorization server its protected resource metadata
 * names, and the registration, token and revocation endpoints of the discovered metadata. Each input arrives where
 * a real flow would meet it: handed out by a well-behaved server on a public address, which the loopback-only
 * network namespace puts on `lo`. A control run with legitimate URLs succeeds on all 12 paths; every corpus input
 * is then refused by the guard before any connection on every path, and the public server's redirects to private
 * addresses are never followed. Counting listeners on every port the corpus names see nothing arrive.
 * Skipped where no namespace can be made.
 */
import { assert, describe, it } from "vitest"
import { execFileSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { type Attempt, corpus as inputList } from "./ssrfCorpusRun.ts"

/** How to get a loopback-only network namespace whose loopback can take an extra address, if at all. */
const unshare = (() => {
  for (const flags of [["-n"], ["-r", "-n"]]) {
    try {
      execFileSync("unshare", [...flags, "sh", "-c", "ip link set lo up && ip addr add 93.184.215.14/32 dev lo"], {
        stdio: "ignore",
        timeout: 10_000
      })
      return flags
    } catch {
      // Not available this way; try the next.
    }
  }
  return undefined
})()

const PATHS = 12
/** Paths whose answer to a 3xx is a status or a miss, not an error: the challenge and metadata discovery. */
const redirectTolerant = new Set([
  "MCP server (challenge)",
  "MCP authorization server metadata (discovery)",
  "REST issuer metadata (RFC 9207 check)"
])

describe.skipIf(unshare === undefined)("SSRF corpus through every OAuth request (loopback-only namespace)", () => {
  it("refuses every input on all 12 OAuth paths before a connection; redirects are not followed", () => {
    const script = fileURLToPath(new URL("./ssrfCorpusRun.ts", import.meta.url))
    const output = execFileSync(
      "unshare",
      [
        ...(unshare ?? []),
        "sh",
        "-c",
        'ip link set lo up && ip addr add 93.184.215.14/32 dev lo && exec "$0" "$1"',
        process.execPath,
        script
      ],
      { encoding: "utf8", timeout: 100_000, maxBuffer: 64 * 1024 * 1024, stdio: ["ignore", "pipe", "inherit"] }
    )
    const report = JSON.parse(output) as {
      readonly control: number
      readonly attempts: ReadonlyArray<Attempt>
      readonly arrivals: ReadonlyArray<string>
      readonly redirects: number
    }
    assert.strictEqual(report.control, 2, "the listeners count loopback connections (IPv4 and IPv6)")

    // The control: with legitimate URLs every path works, so a refusal below is the input's doing.
    const controls = report.attempts.filter((a) => a.control)
    assert.strictEqual(controls.length, PATHS)
    for (const a of controls) assert.isTrue(a.ok, `control ${a.path}: ${a.reason} ${a.message}`)

    const corpus = report.attempts.filter((a) => !a.control)
    const inputs = new Set(corpus.map((a) => a.input))
    assert.isAtLeast(inputs.size, 40)
    assert.strictEqual(new Set(corpus.map((a) => a.path)).size, PATHS)
    assert.strictEqual(corpus.length, inputs.size * PATHS)
    assert.deepStrictEqual(report.arrivals, [], "connections arrived at the loopback listeners")

    const bypassUrls = new Set(inputList.filter((i) => !i.redirect).map((i) => i.name))
    for (const a of corpus) {
      const name = `${a.input} via ${a.path}`
      assert.strictEqual(a.arrivedDuring, 0, name)
      // The flow got as far as the step that uses the input (the public server handed it out).
      assert.isTrue(a.reached, `${name}: the flow never reached the input`)
      if (bypassUrls.has(a.input)) {
        assert.isFalse(a.ok, `${name} was not refused`)
        assert.strictEqual(a.upstream, "destination_refused", `${name}: ${a.reason} ${a.message}`)
        continue
      }
      // A redirect from the public server to a private address: never followed. The challenge reports the 307
      // itself; discovery treats it as "no metadata there" and falls back to the public origin; the rest fail.
      if (a.ok) {
        assert.isTrue(redirectTolerant.has(a.path), `${name} succeeded`)
        if (a.path === "MCP server (challenge)") assert.strictEqual(a.status, 307, name)
      } else {
        assert.include(a.message, "307", name)
      }
    }
    assert.isAtLeast(report.redirects, (inputs.size - bypassUrls.size) * PATHS, "every redirect input was served")

    const refused = corpus.filter((a) => a.upstream === "destination_refused").length
    console.info(
      `OAuth SSRF figures: ${JSON.stringify({
        inputs: inputs.size,
        paths: PATHS,
        attempts: corpus.length,
        refusedByGuard: refused,
        redirectsNotFollowed: corpus.length - refused,
        connectionsArrived: report.arrivals.length
      })}`
    )
  }, 120_000)
})
