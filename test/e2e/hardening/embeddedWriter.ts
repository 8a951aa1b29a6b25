/**
 * An embedded Switchboard in its own process on a shared data directory (for Concurrency.test.ts): updates one
 * connector and creates its own, as fast as it can, and prints what each write answered as JSON on stdout.
 * argv: home, tag, count.
 */
import * as Principal from "@switchboard/core/Principal"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Layers from "@switchboard/daemon/Layers"
import * as Effect from "effect/Effect"

const [home = "", tag = "p", countText = "20"] = process.argv.slice(2)
const count = Number(countText)

export interface WriteResult {
  readonly who: string
  readonly kind: "update" | "create"
  readonly ok: boolean
  readonly version?: number
  readonly display?: string
  readonly error?: string
}

const program = Effect.gen(function* () {
  const sb = yield* Switchboard.Switchboard
  const results: Array<WriteResult> = []
  yield* Effect.forEach(
    Array.from({ length: count }, (_, i) => i),
    (i) =>
      Effect.gen(function* () {
        const display = `${tag}-${i}`
        const updated = yield* sb.updateConnector("shared", { display_name: display }).pipe(
          Effect.map((c) => ({ who: tag, kind: "update" as const, ok: true, version: c.version, display })),
          Effect.catch((e: { readonly code?: string; readonly message?: string }) =>
            Effect.succeed({ who: tag, kind: "update" as const, ok: false, error: `${e.code}: ${e.message}` })
          )
        )
        results.push(updated)
        const created = yield* sb
          .createConnector({
            name: `${tag}-own-${i}`,
            display_name: display,
            auth_patterns: [],
            proxy_url: "https://api.concurrency.invalid/"
          })
          .pipe(
            Effect.map(() => ({ who: tag, kind: "create" as const, ok: true })),
            Effect.catch((e: { readonly code?: string; readonly message?: string }) =>
              Effect.succeed({ who: tag, kind: "create" as const, ok: false, error: `${e.code}: ${e.message}` })
            )
          )
        results.push(created)
      }),
    { concurrency: 4, discard: true }
  )
  return results
}).pipe(
  Effect.provide(Layers.embedded({ home, env: {} })),
  Effect.provideService(Principal.CurrentPrincipal, Layers.localPrincipal())
)

Effect.runPromise(program).then(
  (results) => {
    process.stdout.write(JSON.stringify(results))
  },
  (error: unknown) => {
    process.stderr.write(`${String(error)}\n`)
    process.exitCode = 1
  }
)
