/**
 * The SSRF corpus (ssrfCorpus.ts, 56 inputs) through the OAuth steps of a whole daemon that only a working flow
 * reaches (ssrfOAuthRun.ts), inside a loopback-only network namespace whose `lo` also carries a "public" address
 * for a well-behaved authorization and MCP server: a REST connector's `user_info_uri` (read after a successful code
 * exchange at the daemon's callback), its `oauth_config.issuer` (metadata read for the RFC 9207 check), and for an
 * MCP server the `resource_metadata` of its challenge, the authorization server its protected resource metadata
 * names, and the dynamic client registration endpoint. The control run with legitimate URLs works on all 5 paths
 * (the account label comes from user info); every input is then refused at validation, by the guard, or (a name
 * the namespace cannot resolve) fails, and nothing arrives at the counting listeners. The daemon keeps serving.
 * Skipped where no namespace can be made.
 */
import { execFileSync } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "vitest"
import type { Attempt } from "./ssrfOAuthRun.ts"

const here = Path.dirname(fileURLToPath(import.meta.url))
const setup = "ip link set lo up && ip addr add 93.184.215.14/32 dev lo"

const unshare = (() => {
  try {
    execFileSync("unshare", ["-n", "sh", "-c", setup], { stdio: "ignore", timeout: 10_000 })
    return true
  } catch {
    return false
  }
})()

const PATHS = 5
const USER_INFO = "OAuth user_info_uri (after the code exchange)"
const ISSUER = "OAuth issuer metadata (RFC 9207 check)"

export const figures = {
  inputs: 0,
  attempts: 0,
  refusedAtValidation: 0,
  refusedByGuard: 0,
  unresolvable: 0,
  refusedBySchema: 0,
  connectionsArrived: 0
}

describe("SSRF corpus through the OAuth steps behind a working flow (loopback-only namespace)", () => {
  it.skipIf(!unshare)(
    "user info, issuer metadata, resource metadata, discovery and registration refuse every input",
    () => {
      const out = execFileSync(
        "unshare",
        ["-n", "sh", "-c", `${setup} && exec "${process.execPath}" "${Path.join(here, "ssrfOAuthRun.ts")}"`],
        { encoding: "utf8", timeout: 150_000, maxBuffer: 64 * 1024 * 1024, stdio: ["ignore", "pipe", "inherit"] }
      )
      const report = JSON.parse(out) as {
        readonly control: number
        readonly attempts: ReadonlyArray<Attempt>
        readonly arrivals: ReadonlyArray<string>
        readonly healthy: boolean
      }
      assert.strictEqual(report.control, 2, "the listeners count loopback connections (IPv4 and IPv6)")

      const controls = report.attempts.filter((a) => a.control)
      assert.strictEqual(controls.length, PATHS)
      for (const a of controls) assert.strictEqual(a.status, 200, `control ${a.path}: ${a.code} ${a.upstream}`)
      assert.strictEqual(controls.find((a) => a.path === USER_INFO)?.code, "someone@example.test")

      const corpus = report.attempts.filter((a) => !a.control)
      const inputs = new Set(corpus.map((a) => a.input))
      assert.isAtLeast(inputs.size, 40)
      assert.strictEqual(new Set(corpus.map((a) => a.path)).size, PATHS)
      assert.strictEqual(corpus.length, inputs.size * PATHS)
      assert.deepStrictEqual(report.arrivals, [], "connections arrived at the loopback listeners")
      assert.isTrue(report.healthy)

      const webUrl = (input: string) => /^https?:/u.test(input)
      for (const a of corpus) {
        const name = `${a.input} via ${a.path}`
        assert.strictEqual(a.arrivedDuring, 0, name)
        assert.isTrue(a.reached, `${name}: the flow never reached the input`)
        if (a.status === 422) {
          // Refused when the connector was created: only the REST paths carry the input in the connector.
          assert.isTrue(a.path === USER_INFO || a.path === ISSUER, name)
          assert.isFalse(webUrl(a.input), name)
          continue
        }
        if (a.path === USER_INFO) {
          // The flow completes; a refused user-info request leaves no account label.
          assert.strictEqual(a.status, 200, name)
          assert.strictEqual(a.code, "", `${name}: an account label came back`)
          continue
        }
        assert.isAtLeast(a.status, 400, name)
        if (a.code === "oauth_metadata_invalid") {
          // The SDK refuses a non-http(s) URL in metadata before any request.
          assert.isFalse(webUrl(a.input), name)
          continue
        }
        assert.include(["destination_refused", "upstream_unreachable"], a.upstream, `${name}: ${a.code}`)
      }
      figures.inputs = inputs.size
      figures.attempts = corpus.length
      figures.refusedAtValidation = corpus.filter((a) => a.status === 422).length
      figures.refusedByGuard = corpus.filter((a) => a.upstream === "destination_refused").length
      figures.unresolvable = corpus.filter((a) => a.upstream === "upstream_unreachable").length
      figures.refusedBySchema = corpus.filter((a) => a.code === "oauth_metadata_invalid").length
      figures.connectionsArrived = report.arrivals.length
      console.info(
        `OAuth SSRF (daemon) figures: ${JSON.stringify({
          ...figures,
          userInfoWithoutLabel: corpus.filter((a) => a.path === USER_INFO && a.status === 200).length
        })}`
      )
    },
    180_000
  )
})
