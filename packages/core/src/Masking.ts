/**
 * Masking of secret values where they are shown (credential lists, CLI output): the first 2 and last 2 code
 * points of a secret of at least 10, otherwise a fixed `****`, so the output never reveals more than 4
 * characters, nor the length of a short secret.
 */
import * as Redacted from "effect/Redacted"

/** Secrets shorter than this are masked entirely. */
export const MIN_PARTIAL_LENGTH = 10

/** The mask of a secret too short to show any of it. */
export const FULL_MASK = "****"

/** `"svc_kaireon"` → `"sv***on"`; under 10 code points → `"****"`. Never splits a surrogate pair. */
export const mask = (secret: string): string => {
  const points = Array.from(secret)
  if (points.length < MIN_PARTIAL_LENGTH) return FULL_MASK
  return `${points.slice(0, 2).join("")}***${points.slice(-2).join("")}`
}

/** Masks every value of a record of secrets. */
export const maskRecord = (values: Readonly<Record<string, Redacted.Redacted<string>>>): Record<string, string> =>
  Object.fromEntries(Object.entries(values).map(([key, value]) => [key, mask(Redacted.value(value))]))
