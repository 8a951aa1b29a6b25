/**
 * Prefixed, time-sortable identifiers (`ctr_`, `cred_`, `conn_`, `aud_`): 10 Crockford base32 characters of
 * milliseconds followed by 16 of randomness (incremented within a millisecond), so ids sort by creation time and keyset pagination can use them.
 * Time and randomness come from `Clock` and `Random`, so tests are exact.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"

const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

export const prefixes = {
  connector: "ctr",
  credential: "cred",
  connection: "conn",
  audit: "aud",
  oauthState: "ost"
} as const
export type Prefix = (typeof prefixes)[keyof typeof prefixes]

const encodeTime = (millis: number): string => {
  let out = ""
  let rest = Math.max(0, Math.floor(millis))
  for (let i = 0; i < 10; i++) {
    out = alphabet[rest % 32] + out
    rest = Math.floor(rest / 32)
  }
  return out
}

/** The next base32 string of the same length, or undefined when it would overflow. */
const increment = (digits: string): string | undefined => {
  const chars = digits.split("")
  for (let i = chars.length - 1; i >= 0; i--) {
    const next = alphabet.indexOf(chars[i] as string) + 1
    if (next < 32) {
      chars[i] = alphabet[next] as string
      return chars.join("")
    }
    chars[i] = alphabet[0] as string
  }
  return undefined
}

// Sixteen draws from the fiber's `Random` (what `Random.nextIntBetween(0, 31)` draws, without an Effect each).
const randomPart = Effect.withFiber((fiber) => {
  const random = fiber.getRef(Random.Random)
  let out = ""
  for (let i = 0; i < 16; i++) out += alphabet[Math.floor(random.nextDoubleUnsafe() * 32)]
  return Effect.succeed(out)
})

/**
 * A generator of monotonic ids: within one millisecond (or when the clock steps back) the random part of the
 * previous id is incremented, so ids from one generator always sort in the order they were made.
 */
export const generator: Effect.Effect<(prefix: Prefix) => Effect.Effect<string>> = Effect.map(
  Ref.make({ time: -1, random: "" }),
  (last) => (prefix) =>
    Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const previous = yield* Ref.get(last)
      let time = Math.max(now, previous.time)
      let random = time === previous.time ? increment(previous.random) : yield* randomPart
      if (random === undefined) {
        time += 1
        random = yield* randomPart
      }
      yield* Ref.set(last, { time, random })
      return `${prefix}_${encodeTime(time)}${random}`
    })
)

/** A new id with the given prefix (not monotonic within a millisecond: use `generator` for that). */
export const make = (prefix: Prefix): Effect.Effect<string> =>
  Effect.gen(function* () {
    const millis = yield* Clock.currentTimeMillis
    return `${prefix}_${encodeTime(millis)}${yield* randomPart}`
  })

const patterns = new Map<Prefix, RegExp>()
const idPattern = (prefix: Prefix): RegExp => {
  let pattern = patterns.get(prefix)
  if (pattern === undefined) {
    pattern = new RegExp(`^${prefix}_[0-9A-HJKMNP-TV-Z]{26}$`, "u")
    patterns.set(prefix, pattern)
  }
  return pattern
}

/** True when `value` looks like an id with that prefix (used to tell ids from names). */
export const is = (prefix: Prefix, value: string): boolean => idPattern(prefix).test(value)

/** A schema for ids of one prefix. */
export const schema = (prefix: Prefix) =>
  Schema.String.check(Schema.isPattern(idPattern(prefix), { message: `expected a ${prefix}_ id` }))
