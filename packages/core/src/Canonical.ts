/**
 * The one canonical JSON encoding of Switchboard, for everything that hashes or compares JSON values: the audit
 * chain (`AuditChain.canonical`), tool-manifest pins (`ToolPins.toolHash`) and cassette matching (request bodies,
 * tool arguments). Equal values give equal text whatever the order their keys were written in.
 *
 * The text is what `JSON.stringify` writes, with two differences: object keys are sorted at every level (by UTF-16
 * code units, as `Array.prototype.sort` orders strings, so integer-like keys are not moved to the front), and an own
 * `__proto__` key (as `JSON.parse` makes one) is kept like any other key. No whitespace; object members whose value
 * is `undefined` (or a function or symbol) are left out, as `JSON.stringify` leaves them out.
 *
 * Core has no crypto: the hex SHA-256 of such a text comes from the port that needs it (`AuditChain`, `ToolPins`),
 * implemented by each store adapter with node:crypto; `Digest` is its type.
 */

/** Hex SHA-256 of the UTF-8 bytes of a text, supplied by an adapter (core has no crypto). */
export type Digest = (text: string) => string

const omitted = (value: unknown): boolean =>
  value === undefined || typeof value === "function" || typeof value === "symbol"

/** JSON with object keys sorted at every level, no whitespace, `undefined` members left out. */
export const canonicalJson = (value: unknown): string => {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null"
  if (Array.isArray(value)) {
    let out = "["
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ","
      out += canonicalJson(value[i])
    }
    return `${out}]`
  }
  const record = value as Readonly<Record<string, unknown>>
  let out = "{"
  let first = true
  for (const key of Object.keys(record).sort()) {
    const member = record[key]
    if (omitted(member)) continue
    if (!first) out += ","
    first = false
    out += `${JSON.stringify(key)}:${canonicalJson(member)}`
  }
  return `${out}}`
}
