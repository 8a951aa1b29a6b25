/**
 * `{{field}}` templates: connector URLs such as `https://{{domain}}/api/{{version}}/x?team={{team}}` and plain
 * strings such as the env values of local MCP commands (`{{token}}`). A URL value is encoded for the position it
 * lands in, so no value can change the structure of the URL: path, query and fragment values are
 * percent-encoded, and host values are validated instead (a hostname, IPv4 or bracketed IPv6, with an optional
 * port). Values may be secrets, so errors name the field and the rule, never the value.
 */
import * as Result from "effect/Result"
import { TemplateError } from "./Errors.ts"

/** Where a placeholder sits in a URL: the authority (after `scheme://` up to the first `/ ? #`), or after it. */
export type Position = "host" | "path" | "query" | "fragment"

/** One `{{name}}` of a URL template and where it sits. */
export interface Placeholder {
  readonly name: string
  readonly position: Position
}

/** A piece of a parsed URL template: literal text or a placeholder, each tagged with its position. */
export type Part =
  | { readonly _tag: "Literal"; readonly text: string; readonly position: "scheme" | Position }
  | { readonly _tag: "Field"; readonly name: string; readonly position: Position }

/** A URL template that is known to render to a valid http(s) URL once its values are valid. */
export interface ParsedTemplate {
  readonly template: string
  readonly scheme: "http" | "https"
  readonly parts: ReadonlyArray<Part>
  /** Every occurrence, in order (a name may occur more than once). */
  readonly placeholders: ReadonlyArray<Placeholder>
}

type Token = { readonly _tag: "Text"; readonly text: string } | { readonly _tag: "Field"; readonly name: string }

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

const invalidTemplate = (message: string): TemplateError => new TemplateError({ reason: "template_invalid", message })

const tokenize = (template: string): Result.Result<ReadonlyArray<Token>, TemplateError> => {
  const tokens: Array<Token> = []
  let i = 0
  while (i < template.length) {
    const open = template.indexOf("{{", i)
    const stray = template.indexOf("}}", i)
    if (stray !== -1 && (open === -1 || stray < open)) {
      return Result.fail(invalidTemplate(`Unbalanced braces in template: "}}" at ${stray} has no matching "{{"`))
    }
    if (open === -1) {
      tokens.push({ _tag: "Text", text: template.slice(i) })
      break
    }
    if (open > i) tokens.push({ _tag: "Text", text: template.slice(i, open) })
    const close = template.indexOf("}}", open + 2)
    if (close === -1) {
      return Result.fail(invalidTemplate(`Unbalanced braces in template: "{{" at ${open} is never closed`))
    }
    const inner = template.slice(open + 2, close)
    if (inner.includes("{") || inner.includes("}")) {
      return Result.fail(invalidTemplate(`Unbalanced braces in template: nested braces in the placeholder at ${open}`))
    }
    const name = inner.trim()
    if (name === "") return Result.fail(invalidTemplate(`Empty placeholder name at ${open}`))
    if (!NAME.test(name)) {
      return Result.fail(
        invalidTemplate(
          `Invalid placeholder name "${name}" at ${open}: use letters, digits and _, not starting with a digit`
        )
      )
    }
    tokens.push({ _tag: "Field", name })
    i = close + 2
  }
  return Result.succeed(tokens)
}

const distinctNames = (tokens: ReadonlyArray<Token>): ReadonlyArray<string> => {
  const names: Array<string> = []
  for (const token of tokens) {
    if (token._tag === "Field" && !names.includes(token.name)) names.push(token.name)
  }
  return names
}

/** The distinct field names of a template, in order of first use; empty when the template is malformed. */
export const fieldNames = (template: string): ReadonlyArray<string> =>
  Result.match(tokenize(template), { onFailure: () => [], onSuccess: distinctNames })

/** Checks the `{{name}}` syntax of a plain (non-URL) template and gives its distinct field names. */
export const parseString = (template: string): Result.Result<ReadonlyArray<string>, TemplateError> =>
  Result.map(tokenize(template), distinctNames)

const missing = (names: ReadonlyArray<string>): TemplateError =>
  new TemplateError({
    reason: "template_value_missing",
    message: `No value for template field "${names[0]}"`,
    details: { fields: names }
  })

const missingNames = (
  tokens: ReadonlyArray<Token | Part>,
  values: Readonly<Record<string, string | undefined>>
): ReadonlyArray<string> => {
  const names: Array<string> = []
  for (const token of tokens) {
    if (token._tag !== "Field" || names.includes(token.name)) continue
    const value = Object.hasOwn(values, token.name) ? values[token.name] : undefined
    if (value === undefined || value === "") names.push(token.name)
  }
  return names
}

/** Plain substitution for non-URL templates (env values of local MCP commands); no encoding. */
export const renderString = (
  template: string,
  values: Readonly<Record<string, string | undefined>>
): Result.Result<string, TemplateError> =>
  Result.flatMap(tokenize(template), (tokens) => {
    const absent = missingNames(tokens, values)
    if (absent.length > 0) return Result.fail(missing(absent))
    return Result.succeed(tokens.map((token) => (token._tag === "Text" ? token.text : values[token.name])).join(""))
  })

// --- hosts

const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/
const OCTET = /^(?:0|[1-9][0-9]{0,2})$/
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/
const PORT = /^[0-9]{1,5}$/

/** Four decimal octets without leading zeros: the only IPv4 form the URL parser keeps as written. */
const isIPv4 = (host: string): boolean => {
  const octets = host.split(".")
  return octets.length === 4 && octets.every((octet) => OCTET.test(octet) && Number(octet) <= 255)
}

/** The URL parser reads a host whose last label looks numeric as an IPv4 address, so such names are refused. */
const looksNumeric = (label: string): boolean => /^[0-9]+$/.test(label) || /^0x[0-9a-f]*$/i.test(label)

const isHostname = (host: string): boolean => {
  if (host.length === 0 || host.length > 253) return false
  const labels = host.split(".")
  return labels.every((label) => LABEL.test(label)) && !looksNumeric(labels[labels.length - 1] ?? "")
}

const isIPv6 = (address: string): boolean => {
  const gap = address.indexOf("::")
  if (gap !== -1 && gap !== address.lastIndexOf("::")) return false
  const groupsOf = (text: string) => (text === "" ? [] : text.split(":"))
  const head = groupsOf(gap === -1 ? address : address.slice(0, gap))
  const tail = gap === -1 ? [] : groupsOf(address.slice(gap + 2))
  const groups = [...head, ...tail]
  const lastIsEnd = gap === -1 || tail.length > 0
  let count = 0
  for (const [i, group] of groups.entries()) {
    if (i === groups.length - 1 && lastIsEnd && isIPv4(group)) count += 2
    else if (HEX_GROUP.test(group)) count += 1
    else return false
  }
  return gap === -1 ? count === 8 : count <= 7
}

interface HostPort {
  readonly host: string
  readonly port: string | undefined
}

const splitHostPort = (authority: string): HostPort | undefined => {
  if (authority.startsWith("[")) {
    const close = authority.indexOf("]")
    if (close === -1) return undefined
    const rest = authority.slice(close + 1)
    if (rest !== "" && !rest.startsWith(":")) return undefined
    return { host: authority.slice(0, close + 1), port: rest === "" ? undefined : rest.slice(1) }
  }
  const colon = authority.indexOf(":")
  return colon === -1
    ? { host: authority, port: undefined }
    : { host: authority.slice(0, colon), port: authority.slice(colon + 1) }
}

const isValidHost = (host: string): boolean =>
  host.startsWith("[") && host.endsWith("]") ? isIPv6(host.slice(1, -1)) : isIPv4(host) || isHostname(host)

const isValidPort = (port: string | undefined): boolean =>
  port === undefined || (PORT.test(port) && Number(port) <= 65535)

/** `host[:port]` where host is a hostname (labels `[A-Za-z0-9-]`, 1..63, ≤ 253 in all), IPv4 or `[IPv6]`. */
const parseHostPort = (authority: string): HostPort | undefined => {
  const split = splitHostPort(authority)
  return split !== undefined && isValidHost(split.host) && isValidPort(split.port) ? split : undefined
}

const HOST_RULE = "expected a hostname, an IPv4 address or a bracketed IPv6 address, optionally followed by :port"

// --- URL templates

const valueInvalid = (name: string, position: Position, rule: string): TemplateError =>
  new TemplateError({
    reason: "template_value_invalid",
    message: `The value of template field "${name}" is not allowed in the URL ${position}: ${rule}`,
    details: { field: name, position, rule }
  })

const SCHEME = /^(https?):\/\//i

/** Controls, space, backslash and braces: URL parsers drop or rewrite them, so a URL template may not hold them. */
const hasForbiddenLiteral = (text: string): boolean => {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code <= 0x20 || code === 0x7f || code === 0x5c || code === 0x7b || code === 0x7d) return true
  }
  return false
}

const nextPosition = (position: "scheme" | Position, char: string): "scheme" | Position => {
  if (position === "fragment") return position
  if (char === "#") return "fragment"
  if (position === "query") return position
  if (char === "?") return "query"
  if (position === "path") return position
  return char === "/" ? "path" : position
}

const splitLiteral = (text: string, start: "scheme" | Position): { parts: Array<Part>; end: "scheme" | Position } => {
  const parts: Array<Part> = []
  let position = start
  let from = 0
  for (let i = 0; i < text.length; i++) {
    const next = nextPosition(position, text.charAt(i))
    if (next !== position) {
      if (i > from) parts.push({ _tag: "Literal", text: text.slice(from, i), position })
      position = next
      from = i
    }
  }
  if (text.length > from) parts.push({ _tag: "Literal", text: text.slice(from), position })
  return { parts, end: position }
}

/** WHATWG URL parsers resolve these segments (`%2e` counts as a dot), so a value must not produce one. */
const isDotSegment = (segment: string): boolean => {
  const lower = segment.toLowerCase()
  return (
    lower === "." || lower === ".." || lower === "%2e" || lower === ".%2e" || lower === "%2e." || lower === "%2e%2e"
  )
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

const DEFAULT_PORT = { http: "80", https: "443" } as const

/** Renders a parsed URL template, encoding or validating each value for its position. */
export const renderParsed = (
  parsed: ParsedTemplate,
  values: Readonly<Record<string, string | undefined>>
): Result.Result<string, TemplateError> => {
  const absent = missingNames(parsed.parts, values)
  if (absent.length > 0) return Result.fail(missing(absent))
  let out = ""
  let authority = ""
  const hostFields: Array<string> = []
  const segments: Array<{ text: string; fields: Array<string> }> = []
  for (const part of parsed.parts) {
    let piece: string
    if (part._tag === "Literal") {
      piece = part.text
    } else {
      const value = values[part.name] ?? ""
      if (LONE_SURROGATE.test(value)) return Result.fail(valueInvalid(part.name, part.position, "not valid Unicode"))
      if (part.position === "host") {
        if (parseHostPort(value) === undefined) return Result.fail(valueInvalid(part.name, "host", HOST_RULE))
        hostFields.push(part.name)
        piece = value
      } else {
        piece = encodeURIComponent(value)
      }
    }
    out += piece
    if (part.position === "host") authority += piece
    if (part.position === "path") {
      const pieces = piece.split("/")
      for (const [i, text] of pieces.entries()) {
        const last = segments[segments.length - 1]
        if (i === 0 && last !== undefined) last.text += text
        else segments.push({ text, fields: [] })
      }
      if (part._tag === "Field") segments[segments.length - 1]?.fields.push(part.name)
    }
  }
  const blame = hostFields[0]
  let expected: HostPort | undefined
  if (blame !== undefined) {
    expected = parseHostPort(authority)
    if (expected === undefined) {
      return Result.fail(valueInvalid(blame, "host", `the host becomes invalid: ${HOST_RULE}`))
    }
  }
  for (const segment of segments) {
    if (!isDotSegment(segment.text)) continue
    const field = segment.fields[0]
    return Result.fail(
      field === undefined
        ? invalidTemplate('A URL template must not contain a "." or ".." path segment')
        : valueInvalid(field, "path", 'a path segment must not be "." or ".."')
    )
  }
  const url = URL.parse(out)
  if (url === null) {
    const suspect = parsed.placeholders.find((p) => p.position === "host") ?? parsed.placeholders[0]
    return Result.fail(
      suspect === undefined
        ? invalidTemplate("The template is not a valid URL")
        : valueInvalid(suspect.name, suspect.position, "the rendered URL is not valid")
    )
  }
  if (blame !== undefined && expected !== undefined) {
    const port =
      expected.port === undefined || Number(expected.port) === Number(DEFAULT_PORT[parsed.scheme])
        ? ""
        : String(Number(expected.port))
    const sameHost = expected.host.startsWith("[") || url.hostname === expected.host.toLowerCase()
    if (!sameHost || url.port !== port) {
      return Result.fail(valueInvalid(blame, "host", "the rendered URL does not keep this host"))
    }
  }
  return Result.succeed(out)
}

/**
 * Parses a URL template: checks the `{{name}}` syntax, the http(s) scheme, and the position of each placeholder,
 * and that the template renders to a valid URL when every value is a plain word.
 */
export const parse = (template: string): Result.Result<ParsedTemplate, TemplateError> =>
  Result.flatMap(tokenize(template), (tokens) => {
    const scheme = SCHEME.exec(template)
    if (scheme === null) {
      return Result.fail(invalidTemplate("A URL template must start with http:// or https:// (no placeholders)"))
    }
    const afterScheme = template.charAt(scheme[0].length)
    if (afterScheme === "" || afterScheme === "/" || afterScheme === "?" || afterScheme === "#") {
      return Result.fail(invalidTemplate("A URL template needs a host after the scheme"))
    }
    const parts: Array<Part> = []
    const placeholders: Array<Placeholder> = []
    let position: "scheme" | Position = "scheme"
    for (const [index, token] of tokens.entries()) {
      if (token._tag === "Field") {
        // The scheme is literal: SCHEME matched the raw template, so no placeholder can come before its end.
        const fieldPosition: Position = position === "scheme" ? "host" : position
        parts.push({ _tag: "Field", name: token.name, position: fieldPosition })
        placeholders.push({ name: token.name, position: fieldPosition })
        continue
      }
      if (hasForbiddenLiteral(token.text)) {
        return Result.fail(
          invalidTemplate("A URL template must not contain spaces, control characters, \\, or single braces")
        )
      }
      let text = token.text
      if (index === 0) {
        parts.push({ _tag: "Literal", text: text.slice(0, scheme[0].length), position: "scheme" })
        text = text.slice(scheme[0].length)
        position = "host"
      }
      const split = splitLiteral(text, position)
      for (const part of split.parts) {
        if (part._tag === "Literal" && part.position === "host" && part.text.includes("@")) {
          return Result.fail(invalidTemplate("A URL template must not contain user info (user@host)"))
        }
        parts.push(part)
      }
      position = split.end
    }
    const parsed: ParsedTemplate = {
      template,
      scheme: scheme[1]?.toLowerCase() === "https" ? "https" : "http",
      parts,
      placeholders
    }
    const sample = Object.fromEntries(placeholders.map((placeholder) => [placeholder.name, "x"]))
    return Result.match(renderParsed(parsed, sample), {
      onFailure: (error) =>
        Result.fail(
          error.reason === "template_invalid"
            ? error
            : invalidTemplate(`The template does not form a valid URL even with plain values: ${error.message}`)
        ),
      onSuccess: () => Result.succeed(parsed)
    })
  })

/**
 * Renders a URL template. A missing or empty value is `template_value_missing`; path, query and fragment values
 * are percent-encoded; host values must be a hostname, IPv4 or `[IPv6]` with an optional port.
 */
export const render = (
  template: string,
  values: Readonly<Record<string, string | undefined>>
): Result.Result<string, TemplateError> => Result.flatMap(parse(template), (parsed) => renderParsed(parsed, values))
