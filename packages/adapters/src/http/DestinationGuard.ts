/**
 * The `DestinationGuard` port over the SSRF guard: resolve a URL's host once through the `Resolver` port and
 * classify every address with the same rules the guarded upstream client applies, without connecting. Used by
 * explain, which must say what the guard would decide and send nothing.
 */
import { type DestinationVerdict, DestinationGuard } from "@switchboard/core/Explain"
import { Resolver } from "@switchboard/core/Resolver"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Result from "effect/Result"
import * as Ssrf from "./Ssrf.ts"

const detail = (details: unknown, key: string): string | null => {
  if (typeof details !== "object" || details === null || !(key in details)) return null
  const value = (details as Record<string, unknown>)[key]
  return typeof value === "string" ? value : null
}

/** Build the guard; `allowPrivateNetwork` is the daemon-wide switch, combined with each connection's as in calls. */
export const make = (options: { readonly allowPrivateNetwork?: boolean | undefined } = {}) =>
  Effect.map(Effect.service(Resolver), (resolver) =>
    DestinationGuard.of({
      check: (url, { allowPrivateNetwork }) => {
        const allow = allowPrivateNetwork || options.allowPrivateNetwork === true
        const parsed = Ssrf.parseTarget(url)
        const host = Result.isSuccess(parsed) ? parsed.success.hostname : null
        return Ssrf.resolve(url, { allowPrivateNetwork: allow }).pipe(
          Effect.provideService(Resolver, resolver),
          Effect.map(
            (pinned): DestinationVerdict => ({
              decision: "allow",
              host: pinned.hostname,
              addresses: pinned.addresses.map((a) => a.address),
              rule: null,
              allow_private_network: allow,
              message: `every address of ${pinned.hostname} may be connected to; calls go to ${pinned.address.address}`
            })
          ),
          Effect.catch((error) =>
            Effect.succeed<DestinationVerdict>({
              decision: error.reason === "destination_refused" ? "refuse" : "unresolved",
              host: detail(error.details, "host") ?? host,
              addresses: [detail(error.details, "address")].filter((a): a is string => a !== null),
              rule: detail(error.details, "rule"),
              allow_private_network: allow,
              message: error.message
            })
          )
        )
      }
    })
  )

/** The guard layer; needs a `Resolver` (the system resolver in the daemon, a fake one in tests). */
export const layer = (options: { readonly allowPrivateNetwork?: boolean | undefined } = {}) =>
  Layer.effect(DestinationGuard, make(options))
