/**
 * Connection tests (`POST /v1/connections/{id}/test`, `switchboard test <connection>`): check the connector
 * type's required config, run one real probe through the connection's circuit breaker, record the outcome as
 * the connection's `status` (`active` or `error`), `last_tested_at` and `last_error`, audit it, and answer with
 * the connection, its credential values masked (first 2 + last 2 characters) and what the probe found.
 *
 * Testing is rate limited per tenant (organization): 100 tests per 60 s by default, answering `rate_limited`
 * (429) with the seconds to wait. A connection whose target keeps failing (unreachable, timing out, not
 * speaking its protocol) opens its circuit after 5 failures in a row; while it is open, tests answer
 * `circuit_open` (503) with the seconds to wait and the target is not contacted. A refused credential or a
 * missing database says nothing about the target's health, so it does not count towards opening the circuit.
 *
 * What to probe is decided here, from the catalog, purely: the strategy, the config the probe reads (with the
 * type's default port, and for HTTP-reached types the URL), and the credential values.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as RateLimiter from "effect/persistence/RateLimiter"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as AuthPattern from "./AuthPattern.ts"
import * as Catalog from "./Catalog.ts"
import * as Connection from "./Connection.ts"
import * as Connector from "./Connector.ts"
import { InvalidRequest, type SwitchboardError, UpstreamError } from "./Errors.ts"
import * as Masking from "./Masking.ts"
import * as Principal from "./Principal.ts"
import { Probe, type ProbeRequest, type ProbeResult } from "./Probe.ts"
import * as Resilience from "./Resilience.ts"
import { type ResolvedCall, Switchboard } from "./Switchboard.ts"

export interface Options {
  /** Tests per tenant (organization) per window. */
  readonly rateLimit: { readonly limit: number; readonly window: Duration.Input }
  /** How long a probe may take when the connection sets no connect timeout. */
  readonly timeoutMillis: number
}

export const defaults: Options = {
  rateLimit: { limit: 100, window: "60 seconds" },
  timeoutMillis: 10_000
}

/** Why a test failed: the probe's reasons, and `invalid_config` when the connector's config cannot be probed. */
export const FailureReason = Schema.Literals([
  "unreachable",
  "timeout",
  "authentication_failed",
  "protocol_error",
  "refused",
  "not_found",
  "invalid_config"
])
export type FailureReason = typeof FailureReason.Type

/** What one test found. */
export const TestOutcome = Schema.Struct({
  ok: Schema.Boolean,
  strategy: Catalog.ProbeStrategy,
  reason: Schema.optionalKey(FailureReason),
  detail: Schema.String,
  duration_ms: Schema.Finite
})
export type TestOutcome = typeof TestOutcome.Type

/** The answer of a test: the connection as now stored, its type, its masked credential values and the outcome. */
export const TestedConnection = Schema.Struct({
  ...Connection.Connection.fields,
  type: Connector.Kind,
  auth_config: Schema.Record(Schema.String, Schema.String),
  test: TestOutcome
})
export type TestedConnection = typeof TestedConnection.Type

export class ConnectionTests extends Context.Service<
  ConnectionTests,
  {
    /** Test a connection (by id or name) now. */
    readonly test: (connection: string) => Effect.Effect<TestedConnection, SwitchboardError>
  }
>()("@switchboard/core/ConnectionTests") {}

// ---------------------------------------------------------------------------------------------------------------
// What to probe

/** A probe to run, or why none can run. */
export type Plan =
  | {
      readonly _tag: "Probe"
      readonly strategy: Catalog.ProbeStrategy
      readonly config: Catalog.Config
      readonly credentials: Readonly<Record<string, Redacted.Redacted<string>>>
    }
  | { readonly _tag: "Invalid"; readonly strategy: Catalog.ProbeStrategy; readonly detail: string }

/** Prefixes of credential names the HTTP probe sends verbatim as a header or query parameter. */
export const headerPrefix = "header:"
export const queryPrefix = "query:"

const text = (config: Catalog.Config, key: string): string | undefined => {
  const v = config[key]
  return v === undefined || v === "" ? undefined : String(v).trim()
}

const joinPath = (base: string, path: string | undefined): string =>
  path === undefined ? base : `${base.replace(/\/+$/u, "")}/${path.replace(/^\/+/u, "")}`

const bareHost = (value: string): string => value.replace(/^https?:\/\//iu, "").replace(/\/.*$/u, "")

const HOSTISH = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/u

/** The URL the HTTP probe checks for a catalog type reached over HTTP, or why there is none. */
export const httpUrl = (
  type: Catalog.DataConnectorType,
  config: Catalog.Config,
  override: string | undefined
): Result.Result<string, string> => {
  switch (type) {
    case "rest_api":
    case "webhook": {
      const base = override ?? text(config, "url")
      return base === undefined
        ? Result.fail('config field "url" is missing')
        : Result.succeed(joinPath(base, text(config, "healthPath")))
    }
    case "snowflake": {
      const account = text(config, "account") ?? ""
      return HOSTISH.test(account)
        ? Result.succeed(`https://${account}.snowflakecomputing.com/`)
        : Result.fail('config field "account" is not a Snowflake account identifier')
    }
    case "databricks": {
      const host = bareHost(text(config, "host") ?? "")
      return HOSTISH.test(host)
        ? Result.succeed(`https://${host}/api/2.0/preview/scim/v2/Me`)
        : Result.fail('config field "host" is not a Databricks workspace host')
    }
    case "bigquery": {
      const project = text(config, "project") ?? ""
      const dataset = text(config, "dataset") ?? ""
      return Result.succeed(
        `https://bigquery.googleapis.com/bigquery/v2/projects/${encodeURIComponent(project)}/datasets/${encodeURIComponent(dataset)}`
      )
    }
    case "salesforce": {
      const instance = override ?? text(config, "instanceUrl")
      return instance === undefined
        ? Result.fail('config field "instanceUrl" is missing')
        : Result.succeed(joinPath(instance, "services/data/"))
    }
    case "hubspot":
      return Result.succeed(
        joinPath(override ?? text(config, "instanceUrl") ?? "https://api.hubapi.com", "account-info/v3/details")
      )
    case "postgresql":
    case "mysql":
    case "redshift":
    case "mongodb":
    case "kafka":
    case "confluent_kafka":
    case "aws_s3":
    case "gcs":
    case "azure_blob":
    case "sftp":
    case "amazon_kinesis":
      return Result.fail(`${type} is not reached over HTTP`)
  }
}

/**
 * What to probe for a resolved call. Catalog types: their strategy, with the required config checked, the
 * default port filled in, and for HTTP-reached types the URL; `http` connectors and MCP servers with a URL: the
 * base URL over HTTP, with the connection's auth headers and query parameters (any answer short of a server
 * error or an auth refusal counts, since an API's base URL need not answer 200). Local MCP programs cannot be
 * probed (listing their tools checks them).
 */
export const plan = (call: ResolvedCall): Result.Result<Plan, InvalidRequest> => {
  const { connector } = call
  const kind = connector.kind
  if (kind === "http" || kind === "mcp") {
    if (kind === "mcp" && connector.command !== undefined) {
      return Result.fail(
        new InvalidRequest({
          reason: "invalid_parameter",
          message: `connection ${call.connection.name} runs a local MCP program, which has no network target to probe: list its tools to check it`,
          details: { connection: call.connection.id, connector: connector.name }
        })
      )
    }
    if (call.baseUrl === undefined) {
      return Result.succeed({
        _tag: "Invalid",
        strategy: "http",
        detail: `connector ${connector.name} has no URL to probe`
      })
    }
    const credentials: Record<string, Redacted.Redacted<string>> = {}
    for (const [name, value] of Object.entries(call.headers)) credentials[`${headerPrefix}${name}`] = value
    for (const [name, value] of Object.entries(call.auth.headers)) credentials[`${headerPrefix}${name}`] = value
    for (const [name, value] of Object.entries(call.query)) credentials[`${queryPrefix}${name}`] = Redacted.make(value)
    for (const [name, value] of Object.entries(call.auth.query)) credentials[`${queryPrefix}${name}`] = value
    return Result.succeed({
      _tag: "Probe",
      strategy: "http",
      config: { url: call.baseUrl, expect: "any" },
      credentials
    })
  }
  const entry = Catalog.get(kind)
  const config: Record<string, string | number | boolean> = { ...connector.config }
  const issues = Catalog.configIssues(kind, config)
  if (issues.length > 0) {
    return Result.succeed({ _tag: "Invalid", strategy: entry.probe, detail: issues.map((i) => i.issue).join("; ") })
  }
  if (entry.default_port !== undefined && entry.numeric_config.includes("port") && text(config, "port") === undefined) {
    config.port = entry.default_port
  }
  // Confluent Cloud listens on SASL_SSL only.
  if (kind === "confluent_kafka" && config.ssl === undefined) config.ssl = true
  if (entry.probe === "http") {
    const url = httpUrl(kind, config, call.baseUrl)
    if (Result.isFailure(url)) return Result.succeed({ _tag: "Invalid", strategy: "http", detail: url.failure })
    config.url = url.success
  }
  return Result.succeed({ _tag: "Probe", strategy: entry.probe, config, credentials: call.values })
}

/** `authentication_failed` → `authentication failed`. */
export const describeReason = (reason: FailureReason): string => reason.replaceAll("_", " ")

/** Replace every credential value (3 characters or more) a text carries with its mask. */
export const scrub = (text: string, values: Readonly<Record<string, Redacted.Redacted<string>>>): string => {
  let out = text
  const secrets = Object.values(values)
    .map((v) => Redacted.value(v))
    .filter((v) => v.length >= 3)
    .sort((a, b) => b.length - a.length)
  for (const secret of secrets) out = out.replaceAll(secret, Masking.mask(secret))
  return out
}

/**
 * The values a test's detail must never show: the credential's secret fields (declared `password`, or with a
 * well-known secret name) and the headers and auth query parameters sent. Plain fields (a host, a user name) stay
 * readable, so a target echoing them back still makes sense.
 */
export const secretValues = (
  call: Pick<ResolvedCall, "values" | "pattern" | "headers" | "auth">
): Record<string, Redacted.Redacted<string>> => {
  const specs = [...(call.pattern?.fields ?? []), ...(call.pattern?.account_fields ?? [])]
  const out: Record<string, Redacted.Redacted<string>> = {}
  for (const [name, value] of Object.entries(call.values)) {
    if (AuthPattern.isSecretField(specs.find((s) => s.field_name === name) ?? { field_name: name })) out[name] = value
  }
  for (const [name, value] of Object.entries(call.headers)) out[`${headerPrefix}${name}`] = value
  for (const [name, value] of Object.entries(call.auth.headers)) out[`${headerPrefix}${name}`] = value
  for (const [name, value] of Object.entries(call.auth.query)) out[`${queryPrefix}${name}`] = value
  return out
}

// How a failed probe counts for the circuit: an unhealthy target counts as a failure; a destination the SSRF guard
// refused was never contacted, so it counts for nothing (`destination_refused` is ignored by the breaker); a refused
// credential or a missing database is an answer from a healthy target (a success).
const breakerReason: Readonly<Partial<Record<FailureReason, UpstreamError["reason"]>>> = {
  unreachable: "upstream_unreachable",
  timeout: "upstream_timeout",
  protocol_error: "upstream_protocol_error",
  refused: "destination_refused"
}

const seconds = (millis: number): number => Math.max(1, Math.ceil(millis / 1000))

// ---------------------------------------------------------------------------------------------------------------
// The service

export const make = (options: Partial<Options> = {}) =>
  Effect.gen(function* () {
    const config: Options = { ...defaults, ...options }
    const sb = yield* Switchboard
    const prober = yield* Probe
    const resilience = yield* Resilience.Resilience
    const limiter = yield* RateLimiter.make
    const windowMillis = Duration.toMillis(Duration.fromInputUnsafe(config.rateLimit.window))

    const admit = (org: string) =>
      limiter
        .consume({
          algorithm: "fixed-window",
          onExceeded: "fail",
          key: `connection-tests:${org}`,
          limit: config.rateLimit.limit,
          window: config.rateLimit.window
        })
        .pipe(
          Effect.asVoid,
          Effect.catchTag("RateLimiterError", (e) => {
            const wait = seconds(e.reason._tag === "RateLimitExceeded" ? Duration.toMillis(e.reason.retryAfter) : 1000)
            return Effect.fail(
              new UpstreamError({
                reason: "rate_limited",
                message: `connection tests are limited to ${config.rateLimit.limit} per ${seconds(windowMillis)} s: retry in ${wait} s`,
                details: {
                  retry_after_seconds: wait,
                  limit: config.rateLimit.limit,
                  window_seconds: seconds(windowMillis)
                }
              })
            )
          })
        )

    /** Run the probe through the connection's breaker; `undefined` result means it never ran (circuit open). */
    const probeThroughBreaker = (call: ResolvedCall, request: ProbeRequest) =>
      Effect.gen(function* () {
        const seen = yield* Ref.make<ProbeResult | undefined>(undefined)
        const attempt = prober.probe(request).pipe(
          Effect.tap((result) => Ref.set(seen, result)),
          Effect.flatMap((result) => {
            const counted = result.ok ? undefined : breakerReason[result.reason]
            return counted === undefined
              ? Effect.succeed(result)
              : Effect.fail(new UpstreamError({ reason: counted, message: result.detail }))
          })
        )
        const exit = yield* Effect.exit(
          resilience.guard(call.connection.id, attempt, {
            rateLimit: Resilience.rateLimitOf(call.connection.rate_limit)
          })
        )
        if (Exit.isSuccess(exit)) return exit.value
        const ran = yield* Ref.get(seen)
        if (ran !== undefined) return ran
        // The breaker or the connection's rate limit answered: the target was not contacted.
        return yield* exit
      })

    const test = Effect.fn("ConnectionTests.test")(function* (ref: string) {
      const principal = yield* Principal.guard("connection:test")
      yield* admit(principal.org)
      const call = yield* sb.resolveCall(ref)
      const { connection, connector } = call
      const planned = yield* Effect.fromResult(plan(call))
      const started = yield* Clock.currentTimeMillis
      const result: ProbeResult | { readonly ok: false; readonly reason: "invalid_config"; readonly detail: string } =
        planned._tag === "Invalid"
          ? { ok: false, reason: "invalid_config", detail: planned.detail }
          : yield* probeThroughBreaker(call, {
              strategy: planned.strategy,
              config: planned.config,
              credentials: planned.credentials,
              allowPrivateNetwork: connection.allow_private_network,
              timeoutMillis: connection.timeouts?.connect_ms ?? config.timeoutMillis
            })
      const duration_ms = Math.max(0, (yield* Clock.currentTimeMillis) - started)
      const detail = scrub(result.detail, secretValues(call))
      // A disabled connection stays disabled; the test is still recorded.
      const status: Connection.Status = connection.status === "disabled" ? "disabled" : result.ok ? "active" : "error"
      const updated = yield* sb.setConnectionStatus(connection.id, {
        status,
        last_error: result.ok ? null : `${describeReason(result.reason)}: ${detail}`,
        tested: true
      })
      yield* sb.audit({
        action: "connection.test",
        outcome: result.ok ? "success" : "failure",
        connector_id: connector.id,
        connection_id: connection.id,
        target: connection.name,
        duration_ms,
        ...(result.ok ? {} : { error_code: result.reason })
      })
      const outcome: TestOutcome = {
        ok: result.ok,
        strategy: planned.strategy,
        ...(result.ok ? {} : { reason: result.reason }),
        detail,
        duration_ms
      }
      const tested: TestedConnection = {
        ...updated,
        type: connector.kind,
        auth_config: Masking.maskRecord(call.values),
        test: outcome
      }
      return tested
    })

    return ConnectionTests.of({ test })
  })

/** Connection tests over a given `Resilience` (share the proxy's, so a connection has one breaker). */
export const layerNoDeps = (options: Partial<Options> = {}) =>
  Layer.effect(ConnectionTests, make(options)).pipe(Layer.provide(RateLimiter.layerStoreMemory))

/** Connection tests with options and the default `Resilience`; needs `Switchboard` and `Probe`. */
export const layerWith = (options: Partial<Options>) => layerNoDeps(options).pipe(Layer.provide(Resilience.layer))

/** Connection tests with the defaults: 100 tests per 60 s per tenant, 10 s per probe. */
export const layer = layerWith({})
