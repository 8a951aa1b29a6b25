/**
 * Secrets never leak: a canary secret is planted in credentials, inline connection security and connection
 * headers, every operation of the service runs (successes and failures), and every returned value, error
 * message, string form, JSON form, stack and pretty-printed cause is scanned for it.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Memory from "@switchboard/adapters/memory"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { inspect } from "node:util"

const CANARY = "CANARY-5e1f-SECRET-9b2c"
const CANARY_HEADER = "CANARY-HDR-77aa-SECRET"
// Parts of the canary long enough to matter if printed partly (masking shows at most 4 characters).
const fragments = [CANARY, CANARY_HEADER, "5e1f-SECRET", "77aa-SECRET"]

const forms = (value: unknown): ReadonlyArray<string> => {
  const out = [inspect(value, { depth: 20 }), String(value)]
  try {
    out.push(JSON.stringify(value) ?? "")
  } catch {
    // Values that cannot be JSON-encoded are still covered by inspect.
  }
  if (value instanceof Error) out.push(value.message, value.stack ?? "")
  return out
}

const failureCode = (exit: Exit.Exit<unknown, unknown>): string | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const error = Cause.findErrorOption(exit.cause)
  return error._tag === "Some" ? (error.value as { code?: string }).code : "defect"
}

const layer = Switchboard.layer.pipe(Layer.provide(Memory.layer))

describe("canary", () => {
  it.effect("no operation returns or reports a planted secret", () =>
    Effect.gen(function* () {
      const sb = yield* Switchboard.Switchboard
      const observed: Array<unknown> = []
      const capture = <A, E>(effect: Effect.Effect<A, E>) =>
        Effect.exit(effect).pipe(
          Effect.tap((exit) =>
            Effect.sync(() => {
              observed.push(exit)
              if (Exit.isSuccess(exit)) observed.push(exit.value)
              else {
                observed.push(Cause.pretty(exit.cause))
                for (const e of Cause.prettyErrors(exit.cause)) observed.push(e)
              }
            })
          )
        )

      const connector = {
        name: "canary-api",
        display_name: "Canary API",
        auth_patterns: [
          {
            type: "API_KEY",
            fields: [
              { field_name: "api_key", input_type: "password", required: true },
              { field_name: "domain", required: true }
            ]
          }
        ],
        proxy_url: "https://{{domain}}/api",
        proxy_enabled: true
      }
      yield* capture(sb.createConnector(connector))
      yield* capture(sb.listConnectors())
      yield* capture(sb.getConnector("canary-api"))
      yield* capture(sb.authenticationMethods("canary-api"))
      // Secrets in the wrong place must be refused without being echoed.
      const refusals = [
        yield* capture(sb.setCredential("canary-api", "user", { values: { api_key: 42, domain: CANARY } })),
        yield* capture(sb.setCredential("canary-api", "user", { values: { unknown_field: CANARY, domain: "d.test" } }))
      ]
      assert.deepStrictEqual(refusals.map(failureCode), ["validation_failed", "validation_failed"])
      yield* capture(sb.setCredential("canary-api", "user", { values: { api_key: CANARY, domain: `${CANARY}/x?y` } }))
      yield* capture(sb.setCredential("canary-api", "organization", { values: { api_key: CANARY, domain: "o.test" } }))
      yield* capture(
        sb.setCredential("canary-api", "workspace", { name: "ws", values: { api_key: CANARY, domain: "w.test" } })
      )
      yield* capture(sb.listCredentials("canary-api", "user"))
      yield* capture(sb.listCredentials("canary-api", "organization"))
      yield* capture(sb.listCredentials("canary-api", "workspace"))
      yield* capture(
        sb.createConnection("canary-api", {
          name: "Inline",
          security: { api_key: CANARY, domain: "api.canary.test" },
          headers: { "X-Canary": CANARY_HEADER }
        })
      )
      yield* capture(sb.createConnection("canary-api", { name: "Resolved", access_scope: "organizational" }))
      yield* capture(sb.createConnection("canary-api", { name: "Bad one", security: { nope: CANARY } }))
      yield* capture(
        sb.createConnection("canary-api", { name: "Bad header", headers: { "bad header": CANARY_HEADER } })
      )
      yield* capture(
        sb.createConnection("canary-api", {
          name: "Both",
          credential: { scope: "user", name: "default" },
          security: { api_key: CANARY }
        })
      )
      yield* capture(sb.listConnections())
      yield* capture(sb.getConnection("Inline"))
      // The user credential's domain holds the canary and is not a valid host: the refusal must not echo it.
      const resolveFailure = yield* capture(sb.resolveCall("Resolved"))
      assert.strictEqual(failureCode(resolveFailure), "template_value_invalid")
      yield* capture(
        sb.setConnectionStatus("Inline", { status: "error", last_error: "upstream said no", tested: true })
      )
      yield* capture(sb.updateConnector("canary-api", { description: "updated" }))
      yield* capture(sb.updateConnector("canary-api", { proxy_url: `https://${CANARY}.example/{{missing}}` }))
      yield* capture(sb.deleteConnector("canary-api"))
      yield* capture(sb.listAudit({ limit: 100 }))
      yield* capture(sb.deleteCredential("canary-api", "user", "default"))
      yield* capture(sb.deleteConnection("Inline"))
      yield* capture(sb.deleteConnection("Resolved"))
      yield* capture(sb.deleteConnector("canary-api"))

      // resolveCall is the one operation that hands secrets out, and only inside Redacted values.
      const resolved = yield* sb.resolveCall("Inline").pipe(Effect.exit)
      observed.push(resolved)

      assert.isAbove(observed.length, 60)
      for (const value of observed) {
        for (const text of forms(value)) {
          for (const fragment of fragments) {
            assert.notInclude(text, fragment, `leaked in: ${text.slice(0, 300)}`)
          }
        }
      }
    }).pipe(Effect.provide(layer))
  )
})
