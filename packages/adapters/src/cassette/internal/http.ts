/** Small helpers shared by the recorder and the player for HTTP requests. */
import { REDACTED } from "../Cassette.ts"

/** One buffer of the chunks of a body. */
export const concat = (chunks: ReadonlyArray<Uint8Array>): Uint8Array => {
  if (chunks.length === 1 && chunks[0] !== undefined) return chunks[0]
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0))
  let at = 0
  for (const chunk of chunks) {
    out.set(chunk, at)
    at += chunk.length
  }
  return out
}

/** A header's value by case-insensitive name. */
export const headerOf = <V>(headers: Readonly<Record<string, V>>, name: string): V | undefined => {
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return v
  return undefined
}

/** The query of a URL as pairs, with the parameters that carry secrets (by name or by value) redacted. */
export const queryPairs = (
  url: URL,
  secretNames: ReadonlySet<string>,
  scrub: (text: string) => string
): Array<[string, string]> =>
  [...url.searchParams].map(([name, value]) => {
    const clean = scrub(value)
    return [scrub(name), secretNames.has(name) || clean !== value ? REDACTED : value]
  })
