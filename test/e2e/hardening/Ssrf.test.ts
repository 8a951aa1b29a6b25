/**
 * The SSRF corpus (ssrfRun.ts: 56 inputs, numeric, octal and hex IPv4, IPv6 mapped, compatible, NAT64 and 6to4
 * forms, metadata addresses, `0.0.0.0`, userinfo tricks, unicode hosts, non-http schemes, rebinding names) through
 * every outbound path of a whole daemon, inside a loopback-only network namespace: the REST proxy, the HTTP
 * connection test, MCP over HTTP, the OAuth token endpoint (a refresh), the MCP OAuth discovery, the PostgreSQL
 * probe. Counting listeners on every port the corpus names prove that no connection arrived, and every attempt
 * ended in a refusal or an error; the daemon still answers afterwards. Skipped where no namespace can be made.
 */
import { execFileSync } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "vitest"
import type { Attempt } from "./ssrfRun.ts"

const here = Path.dirname(fileURLToPath(import.meta.url))

const unshare = (() => {
  try {
    execFileSync("unshare", ["-n", "sh", "-c", "ip link set lo up"], { stdio: "ignore", timeout: 10_000 })
    return true
  } catch {
    return false
  }
})()

export const figures = { inputs: 0, attempts: 0, refusedAtValidation: 0, refusedOrFailed: 0, connectionsArrived: 0 }

describe("SSRF corpus through every outbound path of the daemon (loopback-only namespace)", () => {
  it.skipIf(!unshare)(
    "refuses every input on every path; nothing reaches a listener",
    () => {
      const out = execFileSync(
        "unshare",
        ["-n", "sh", "-c", `ip link set lo up && exec "${process.execPath}" "${Path.join(here, "ssrfRun.ts")}"`],
        { encoding: "utf8", timeout: 100_000, maxBuffer: 64 * 1024 * 1024 }
      )
      const report = JSON.parse(out) as {
        attempts: Array<Attempt>
        arrivals: Array<string>
        healthy: boolean
        control: number
      }
      assert.strictEqual(report.control, 2, "the listeners count loopback connections (IPv4 and IPv6)")
      const inputs = new Set(report.attempts.map((a) => a.input))
      assert.isAtLeast(inputs.size, 40)
      assert.deepStrictEqual(report.arrivals, [], "connections arrived at the loopback listeners")
      assert.isTrue(report.healthy)
      const outbound = report.attempts.filter((a) => !a.path.startsWith("create "))
      const paths = new Set(outbound.map((a) => a.path))
      assert.strictEqual(paths.size, 6, [...paths].join(", "))
      for (const a of report.attempts) {
        assert.strictEqual(a.arrivedDuring, 0)
        if (a.path.startsWith("create ")) {
          assert.isTrue(a.status === 201 || a.status === 422, `${a.input} ${a.path} → ${a.status}`)
          continue
        }
        // Refused (403 destination_refused, 422), failed upstream (502, an unresolvable name in the namespace),
        // or a connection test that records an error (200 with status "error"); never a success.
        const failed = a.status >= 400 || a.code === "error"
        assert.isTrue(failed, `${a.input} via ${a.path} → ${a.status} ${a.code}`)
      }
      // Every input is refused on every path: none of the 6 paths ever reported a success for it.
      figures.inputs = inputs.size
      figures.attempts = outbound.length
      figures.refusedAtValidation = report.attempts.filter((a) => a.status === 422).length
      figures.refusedOrFailed = outbound.length
      figures.connectionsArrived = report.arrivals.length
      console.info(`SSRF figures: ${JSON.stringify(figures)}`)
    },
    120_000
  )
})
