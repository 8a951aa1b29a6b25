/**
 * Runs every SSRF scenario and prints the outcomes as JSON on stdout. Meant to run inside a loopback-only
 * network namespace (`unshare -n sh -c 'ip link set lo up && node ssrfIsolated.ts'`), where connection
 * attempts pass through to the real network stack: if the guard ever let one through, it could reach
 * nothing but loopback.
 */
import * as Effect from "effect/Effect"
import { runBypasses, runRebinding, runRedirects, runResolver } from "./ssrfScenarios.ts"

const program = Effect.gen(function* () {
  const bypasses = yield* runBypasses(true)
  const rebinding = yield* runRebinding(true)
  const redirects = yield* runRedirects(true)
  const resolver = yield* runResolver
  return { bypasses, rebinding, redirects, resolver }
}).pipe(Effect.scoped)

Effect.runPromise(program).then(
  (report) => {
    process.stdout.write(JSON.stringify(report))
  },
  (error: unknown) => {
    process.stderr.write(`${String(error)}\n`)
    process.exitCode = 1
  }
)
