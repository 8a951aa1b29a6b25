/**
 * The `Resolver` port on the system resolver (`node:dns` `lookup`, which honours /etc/hosts like every other
 * program on the machine): A and AAAA answers in the order the system gives them. The SSRF guard calls it
 * once per connection and checks every address it returns.
 */
import { UpstreamError } from "@switchboard/core/Errors"
import { type Address, Resolver } from "@switchboard/core/Resolver"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { lookup } from "node:dns/promises"

const codeOf = (cause: unknown): string =>
  typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string"
    ? cause.code
    : "ERESOLVE"

export const make = Resolver.of({
  resolve: (hostname) =>
    Effect.tryPromise({
      try: () => lookup(hostname, { all: true, verbatim: true }),
      catch: (cause) => {
        const code = codeOf(cause)
        return new UpstreamError({
          reason: "upstream_unreachable",
          message: `could not resolve host ${hostname} (${code})`,
          details: { host: hostname, code }
        })
      }
    }).pipe(
      Effect.map((answers) =>
        answers.flatMap(
          (a): ReadonlyArray<Address> =>
            a.family === 4 || a.family === 6 ? [{ address: a.address, family: a.family }] : []
        )
      ),
      Effect.withSpan("Resolver.resolve")
    )
})

export const layer = Layer.succeed(Resolver, make)

/**
 * A resolver over a fixed table, for tests: each name maps to its answers, and a name with several answer
 * lists gives the next list on each lookup (a DNS-rebinding server). Unknown names fail like NXDOMAIN.
 */
export const layerTable = (
  table: Readonly<Record<string, ReadonlyArray<ReadonlyArray<string>>>>,
  onLookup?: (hostname: string) => void
) => {
  const calls = new Map<string, number>()
  return Layer.succeed(
    Resolver,
    Resolver.of({
      resolve: (hostname) =>
        Effect.suspend(() => {
          onLookup?.(hostname)
          const name = hostname.toLowerCase()
          const answers = table[name]
          const n = calls.get(name) ?? 0
          calls.set(name, n + 1)
          const list = answers?.[Math.min(n, answers.length - 1)]
          if (list === undefined) {
            return Effect.fail(
              new UpstreamError({
                reason: "upstream_unreachable",
                message: `could not resolve host ${hostname} (ENOTFOUND)`,
                details: { host: hostname, code: "ENOTFOUND" }
              })
            )
          }
          return Effect.succeed(list.map((address): Address => ({ address, family: address.includes(":") ? 6 : 4 })))
        })
    })
  )
}
