/**
 * JSON Schema checks with the validator the MCP SDK itself uses (its ajv provider): tool arguments are
 * checked against the tool's `inputSchema` before a call is sent, and the SDK client checks structured
 * output with the same instance. A schema ajv cannot compile (an unknown draft, a broken `$ref`) is retried
 * without its `$schema`, then left to the server: the upstream stays the authority on its own schemas.
 */
import type { Issue } from "@switchboard/core/Validation"
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv"
import type { JsonSchemaType, JsonSchemaValidator, jsonSchemaValidator } from "@modelcontextprotocol/sdk/validation"

const acceptAll: JsonSchemaValidator<never> = (input) => ({
  valid: true,
  data: input as never,
  errorMessage: undefined
})

/** The SDK's ajv validator that never throws on a schema it cannot compile. */
export class TolerantValidator implements jsonSchemaValidator {
  private readonly ajv = new AjvJsonSchemaValidator()
  getValidator<T>(schema: JsonSchemaType): JsonSchemaValidator<T> {
    for (const candidate of [schema, withoutDialect(schema)]) {
      try {
        return this.ajv.getValidator<T>(candidate)
      } catch {
        // try the next form
      }
    }
    return acceptAll
  }
}

const withoutDialect = (schema: JsonSchemaType): JsonSchemaType => {
  const { $schema: _dialect, ...rest } = schema
  return rest
}

/** `/a/0/b` (a JSON pointer) as `a[0].b`. */
const pathOf = (pointer: string): string => {
  let out = ""
  for (const raw of pointer.split("/").slice(1)) {
    const segment = raw.replaceAll("~1", "/").replaceAll("~0", "~")
    if (/^\d+$/u.test(segment)) out += `[${segment}]`
    else out += out === "" ? segment : `.${segment}`
  }
  return out
}

const join = (parent: string, child: string) => (parent === "" ? child : `${parent}.${child}`)

/**
 * The issues in ajv's error text (`data/a must be number, data must have required property 'b'`), each with
 * its path. Ajv's messages name the rule, never the offending value.
 */
export const issuesOf = (errorMessage: string): ReadonlyArray<Issue> =>
  `, ${errorMessage}`
    .split(/, data(?=[/ ])/u)
    .slice(1)
    .map((item) => {
      const space = item.indexOf(" ")
      const path = pathOf(space === -1 ? item : item.slice(0, space))
      const message = space === -1 ? "is invalid" : item.slice(space + 1)
      const required = /^must have required property '(.+)'$/u.exec(message)
      return required?.[1] !== undefined ? { path: join(path, required[1]), message: "is required" } : { path, message }
    })

/** Check arguments against an input schema: the issues, or an empty list when they are valid. */
export const checkArguments = (
  validator: jsonSchemaValidator,
  schema: Readonly<Record<string, unknown>>
): ((args: unknown) => ReadonlyArray<Issue>) => {
  const validate = validator.getValidator<unknown>(schema)
  return (args) => {
    const result = validate(args)
    return result.valid ? [] : issuesOf(result.errorMessage)
  }
}
