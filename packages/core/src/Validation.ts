/**
 * Decoding untrusted input. Every payload goes through a Schema; failures become one `ValidationFailed`
 * whose `details.issues` name each path (`auth_patterns[0].type`) and the rule that was broken. Input
 * values are never echoed into messages, because a payload may carry secrets.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"
import { ValidationFailed } from "./Errors.ts"

/** One broken rule at one path. */
export interface Issue {
  readonly path: string
  readonly message: string
}

const formatter = SchemaIssue.makeFormatterStandardSchemaV1()

/** Render a Standard Schema path as `a.b[0].c`. */
export const formatPath = (path: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined): string => {
  let out = ""
  for (const segment of path ?? []) {
    const key = typeof segment === "object" && segment !== null ? segment.key : segment
    if (typeof key === "number") out += `[${key}]`
    else out += out === "" ? String(key) : `.${String(key)}`
  }
  return out
}

/** The issues of a SchemaError, flattened to path + message. */
export const issuesOf = (error: Schema.SchemaError): ReadonlyArray<Issue> =>
  formatter(error.issue).issues.map((issue) => ({ path: formatPath(issue.path), message: issue.message }))

/** Build the `ValidationFailed` for a list of issues about `what` ("connector", "credential", ...). */
export const validationFailed = (what: string, issues: ReadonlyArray<Issue>): ValidationFailed =>
  new ValidationFailed({
    message: `invalid ${what}: ${issues.map((i) => (i.path === "" ? i.message : `${i.path}: ${i.message}`)).join("; ")}`,
    details: { issues }
  })

const parseOptions = { errors: "all", onExcessProperty: "error" } as const

/** Decode unknown input with every issue reported and unknown keys refused. */
export const decode =
  <S extends Schema.Decoder<unknown>>(schema: S, what: string) =>
  (input: unknown): Effect.Effect<S["Type"], ValidationFailed> =>
    Effect.mapError(Schema.decodeUnknownEffect(schema, parseOptions)(input), (error) =>
      validationFailed(what, issuesOf(error))
    )

/** Synchronous variant for pure code paths. */
export const decodeResult =
  <S extends Schema.Decoder<unknown>>(schema: S, what: string) =>
  (input: unknown): Result.Result<S["Type"], ValidationFailed> =>
    Result.mapError(Schema.decodeUnknownResult(schema, parseOptions)(input), (error) =>
      validationFailed(what, issuesOf(error))
    )
