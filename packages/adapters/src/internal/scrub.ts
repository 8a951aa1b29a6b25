/**
 * Keeping secret values out of text an adapter writes (error messages, captured stderr, cassettes): the forms a
 * secret may be echoed in, and a scrubber that replaces each of them with a marker.
 */

/** Values shorter than this are not scrubbed: blanking every "X" (a Freshdesk-style default) would garble text. */
export const MIN_SECRET_LENGTH = 4

/**
 * Every form a secret may be echoed in, longest first: raw, the token after an auth scheme (`Bearer <token>`,
 * `Basic <b64>`: the part a server would echo), each URL-encoded and JSON-escaped.
 */
export const secretForms = (values: Iterable<string>): Array<string> => {
  const out = new Set<string>()
  for (const value of values) {
    const forms = [value]
    const scheme = /^\S+\s+(\S.*)$/u.exec(value)
    if (scheme?.[1] !== undefined) forms.push(scheme[1])
    for (const form of forms) {
      out.add(form)
      out.add(encodeURIComponent(form))
      out.add(JSON.stringify(form).slice(1, -1))
    }
  }
  return [...out].filter((s) => s.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length)
}

/** Replace every one of `secrets` (give them longest first, as `secretForms` does) in a text with `marker`. */
export const scrubberWith =
  (marker: string) =>
  (secrets: ReadonlyArray<string>) =>
  (text: string): string => {
    let out = text
    for (const secret of secrets) if (out.includes(secret)) out = out.split(secret).join(marker)
    return out
  }
