/**
 * The SSRF guard end to end through the real client: more than 30 bypass inputs, a DNS-rebinding resolver and
 * redirects from an allowed upstream to refused targets, each proving that nothing was connected. They run
 * in this process with every connection attempt recorded and confined to loopback by the connect hook, and
 * again inside a loopback-only network namespace (where attempts reach the real network stack, which has
 * nowhere to send them) when `unshare -n` works here.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFileSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { type Outcome, bypasses, runBypass, runRebinding, runRedirects, type runResolver } from "./ssrfScenarios.ts"

const checkRefused = (outcome: Outcome, rule: string) => {
  assert.isFalse(outcome.ok, `${outcome.name} was not refused`)
  assert.strictEqual(outcome.reason, "destination_refused", `${outcome.name}: ${outcome.message}`)
  assert.strictEqual(outcome.rule, rule, `${outcome.name}: ${outcome.message}`)
  assert.deepStrictEqual(outcome.attempts, [], `${outcome.name} attempted a connection`)
}

type Rebinding = Effect.Success<ReturnType<typeof runRebinding>>
type Redirects = Effect.Success<ReturnType<typeof runRedirects>>

const checkRebinding = (r: Rebinding) => {
  assert.isTrue(r.pinned.ok, r.pinned.message)
  assert.strictEqual(r.pinned.status, 200)
  assert.deepStrictEqual(r.pinned.attempts, ["93.184.215.14"], "connected to the first, checked answer")
  assert.deepStrictEqual(r.pinned.lookups, ["rebind.example"], "looked up once")
  assert.deepStrictEqual(r.hostHeaders, ["rebind.example"])
  assert.strictEqual(r.refused.reason, "destination_refused")
  assert.include(r.refused.message, "refused 10.0.0.7 (private network, RFC 1918) for host rebind.example")
  assert.deepStrictEqual(r.refused.attempts, [])
  assert.deepStrictEqual(r.refused.lookups, ["rebind.example"])
}

const checkRedirects = (r: Redirects) => {
  for (const outcome of r.fromLoopback) {
    assert.strictEqual(outcome.reason, "destination_refused", `${outcome.name}: ${outcome.message}`)
    assert.include(outcome.message, "(redirect 1)")
    assert.deepStrictEqual(outcome.attempts, ["127.0.0.1"], `${outcome.name}: only the allowed upstream`)
  }
  assert.strictEqual(r.fromPublic.reason, "destination_refused")
  assert.include(r.fromPublic.message, "refused 127.0.0.1 (loopback, RFC 1122)")
  assert.deepStrictEqual(r.fromPublic.attempts, ["93.184.215.14"])
  assert.strictEqual(r.loopbackHits, r.fromLoopback.length)
}

describe("SSRF bypass table (in process, attempts confined to loopback)", () => {
  it("has at least 30 inputs", () => {
    assert.isAtLeast(bypasses.length, 30)
  })

  for (const bypass of bypasses) {
    it.live(
      `refuses ${bypass.url}${bypass.allowPrivateNetwork === true ? " even with allow_private_network" : ""}`,
      () => Effect.map(runBypass(bypass, false), (outcome) => checkRefused(outcome, bypass.rule))
    )
  }

  it.live("DNS rebinding: one lookup, and the connection goes to the checked address", () =>
    Effect.map(runRebinding(false), checkRebinding)
  )

  it.live("a redirect from an allowed upstream to a refused address connects nowhere else", () =>
    Effect.map(runRedirects(false), checkRedirects)
  )
})

/** How to get a loopback-only network namespace here, if at all (root, or an unprivileged user namespace). */
const unshare = (() => {
  for (const flags of [["-n"], ["-r", "-n"]]) {
    try {
      execFileSync("unshare", [...flags, "sh", "-c", "ip link set lo up"], { stdio: "ignore", timeout: 10_000 })
      return flags
    } catch {
      // Not available this way; try the next.
    }
  }
  return undefined
})()

describe.skipIf(unshare === undefined)("SSRF in a loopback-only network namespace", () => {
  it("refuses every bypass, pins on rebinding, re-checks redirects and resolves, with real sockets and DNS", () => {
    const script = fileURLToPath(new URL("./ssrfIsolated.ts", import.meta.url))
    const output = execFileSync(
      "unshare",
      [...(unshare ?? []), "sh", "-c", 'ip link set lo up && exec "$0" "$1"', process.execPath, script],
      { encoding: "utf8", timeout: 60_000, stdio: ["ignore", "pipe", "inherit"] }
    )
    const report = JSON.parse(output) as {
      readonly bypasses: ReadonlyArray<Outcome>
      readonly rebinding: Rebinding
      readonly redirects: Redirects
      readonly resolver: Effect.Success<typeof runResolver>
    }
    assert.strictEqual(report.bypasses.length, bypasses.length)
    report.bypasses.forEach((outcome, i) => checkRefused(outcome, bypasses[i]?.rule ?? ""))
    checkRebinding(report.rebinding)
    checkRedirects(report.redirects)
    assert.deepInclude(report.resolver.localhost, { address: "127.0.0.1", family: 4 })
    assert.strictEqual(report.resolver.missing.reason, "upstream_unreachable")
    assert.match(report.resolver.missing.message, /^could not resolve host no-such-host\.invalid \(E[A-Z_]+\)$/u)
  })
})
