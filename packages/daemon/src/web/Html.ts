/**
 * HTML from template literals with escaping by default: every interpolated value is escaped unless it is already
 * `Html` (built by `html` itself or, for trusted constant markup only, `raw`). Arrays are joined, `null`,
 * `undefined` and `false` render as nothing, so `${cond && html`…`}` works.
 */

/** Markup that is safe to send as is. */
export class Html {
  readonly value: string
  constructor(value: string) {
    this.value = value
  }
  toString() {
    return this.value
  }
}

export type Interpolation = Html | string | number | boolean | null | undefined | ReadonlyArray<Interpolation>

const entities: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
  "`": "&#96;"
}

/** Escape text for an element body or a quoted attribute value. */
export const escape = (text: string): string => text.replace(/[&<>"'`]/gu, (c) => entities[c] ?? c)

const render = (value: Interpolation): string => {
  if (value instanceof Html) return value.value
  if (value === null || value === undefined || value === false || value === true) return ""
  if (Array.isArray(value)) return value.map(render).join("")
  return escape(String(value))
}

/** The escaping template tag. */
export const html = (strings: TemplateStringsArray, ...values: ReadonlyArray<Interpolation>): Html => {
  let out = strings[0] ?? ""
  values.forEach((value, i) => {
    out += render(value) + (strings[i + 1] ?? "")
  })
  return new Html(out)
}

/** Trusted markup (constants of this module's callers only, never input). */
export const raw = (markup: string): Html => new Html(markup)
