/**
 * Explain: a dry run of a call through a connection, for the moment a call answers 401 or reaches the wrong
 * account. It shows which credential was chosen and why (the resolution chain looked at, the connection's access
 * and service-account flag), the field mutations applied (names only), the rendered URL and the request headers
 * with every secret masked, the policy verdict for the current principal, the connection's breaker and rate-limit
 * state, and what the SSRF guard would decide, and sends nothing: the guard only resolves, through the
 * `DestinationGuard` port, whose adapter never connects.
 *
 * Everything but the guard and the breaker state is pure and derived from `Switchboard.resolveCall`, so explain
 * and the proxy cannot disagree about what a call would send.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as AuthPattern from "./AuthPattern.ts"
import * as Connection from "./Connection.ts"
import type * as Connector from "./Connector.ts"
import * as Credential from "./Credential.ts"
import type { SwitchboardError } from "./Errors.ts"
import * as FieldMutation from "./FieldMutation.ts"
import * as Masking from "./Masking.ts"
import * as Principal from "./Principal.ts"
import * as Proxy from "./Proxy.ts"
import * as Resilience from "./Resilience.ts"
import { type ResolvedCall, Switchboard } from "./Switchboard.ts"
import * as Validation from "./Validation.ts"

// ---------------------------------------------------------------------------------------------------------------
// The SSRF port

/** What the SSRF guard would decide for a destination. */
export const DestinationVerdict = Schema.Struct({
  /** `allow`: every resolved address passes; `refuse`: the guard would refuse; `unresolved`: no address. */
  decision: Schema.Literals(["allow", "refuse", "unresolved", "not_applicable"]),
  host: Schema.NullOr(Schema.String),
  addresses: Schema.Array(Schema.String),
  /** The rule that refused (`loopback`, `private`, `metadata`, `scheme`, …). */
  rule: Schema.NullOr(Schema.String),
  allow_private_network: Schema.Boolean,
  message: Schema.String
})
export type DestinationVerdict = typeof DestinationVerdict.Type

/**
 * Port: the SSRF decision for a URL, without connecting. The adapter resolves the host once through the `Resolver`
 * port and classifies every address exactly as the guarded upstream client would. Never fails: a refusal is a
 * verdict. Messages never echo the URL (it may carry secrets).
 */
export class DestinationGuard extends Context.Service<
  DestinationGuard,
  {
    readonly check: (
      url: string,
      options: { readonly allowPrivateNetwork: boolean }
    ) => Effect.Effect<DestinationVerdict>
  }
>()("@switchboard/core/DestinationGuard") {}

// ---------------------------------------------------------------------------------------------------------------
// Request and answer

/** `GET /v1/connections/{id}/explain?method=&path=` or `?tool=`: the call to explain (a bare GET / when absent). */
export const ExplainQuery = Schema.Struct({
  method: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(16))),
  path: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(2048))),
  tool: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(256)))
})
export type ExplainQuery = typeof ExplainQuery.Type

const ChainEntry = Schema.Struct({
  scope: Credential.Scope,
  /** Whose credential this place holds: `org`, `org/workspace` or `org/user:<name>`. */
  owner: Schema.String,
  name: Schema.String,
  /** `missing` (looked at, none there), `chosen`, or `not_reached` (a credential earlier in the chain won). */
  outcome: Schema.Literals(["missing", "chosen", "not_reached"])
})

export const Explanation = Schema.Struct({
  connection: Schema.Struct({
    id: Schema.String,
    name: Schema.String,
    connector: Schema.String,
    connector_version: Schema.Number,
    pinned: Schema.Boolean,
    kind: Schema.String,
    access_scope: Schema.Literals(["personal", "organizational"]),
    is_service_account: Schema.Boolean,
    owner: Schema.String,
    status: Schema.String
  }),
  principal: Principal.Principal,
  policy: Schema.Struct({
    action: Schema.String,
    allowed: Schema.Boolean,
    reason: Schema.NullOr(Schema.String)
  }),
  credential: Schema.Struct({
    source: Schema.Literals(["inline", "stored", "none", "unresolved"]),
    chosen: Schema.NullOr(Schema.Struct({ id: Schema.String, scope: Credential.Scope, name: Schema.String })),
    auth_type: Schema.NullOr(Schema.String),
    /** The value names the credential holds (never the values). */
    fields: Schema.Array(Schema.String),
    chain: Schema.Array(ChainEntry),
    why: Schema.String
  }),
  /** Mutations applied, as `field.part` (`username.suffix`, `password.default`): names only. */
  mutations: Schema.Array(Schema.String),
  request: Schema.Struct({
    method: Schema.NullOr(Schema.String),
    path: Schema.NullOr(Schema.String),
    tool: Schema.NullOr(Schema.String),
    /** The URL the call would go to, secrets masked; `null` when none can be rendered (see `error`). */
    url: Schema.NullOr(Schema.String),
    headers: Schema.Record(Schema.String, Schema.String)
  }),
  resilience: Schema.Struct({
    circuit: Schema.Literals(["closed", "open", "half_open"]),
    rate_limit: Schema.Struct({
      requests_per_second: Schema.Number,
      burst: Schema.Number,
      /** Calls that may go now before the limit refuses one (the bucket is read, no token taken). */
      tokens_available: Schema.Number,
      source: Schema.Literals(["connection", "default"])
    })
  }),
  ssrf: DestinationVerdict,
  /** Why the dry run stopped early (the error the call itself would fail with), if it did. */
  error: Schema.NullOr(Schema.Struct({ code: Schema.String, message: Schema.String })),
  sent: Schema.Literal(false)
})
export type Explanation = typeof Explanation.Type

// ---------------------------------------------------------------------------------------------------------------
// Pure parts

/** The mutations a pattern applies to these values, as `field.part`, in the order they apply. */
export const mutationsApplied = (
  pattern: AuthPattern.AuthPattern | undefined,
  values: Readonly<Record<string, Redacted.Redacted<string>>>
): ReadonlyArray<string> => {
  if (pattern === undefined) return []
  const out: Array<string> = []
  for (const [target, mutation] of Object.entries(pattern.auth_field_mutations ?? {})) {
    if (mutation === undefined) continue
    const source = pattern.type === "OAUTH" && target === "token" ? "access_token" : target
    const raw = values[source]
    const value = raw === undefined ? undefined : Redacted.value(raw)
    const defaulted = (value === undefined || value === "") && mutation.default !== undefined
    if (defaulted) out.push(`${target}.default`)
    if (FieldMutation.apply(mutation, value) === undefined) continue
    if (mutation.prefix !== undefined) out.push(`${target}.prefix`)
    if (mutation.suffix !== undefined) out.push(`${target}.suffix`)
  }
  return out
}

const SCHEMED = /^(Basic|Bearer|Token|Digest|Bot) (.+)$/su

/** A header value as shown: the auth scheme kept, the secret masked (`Bearer sk***yz`). */
export const maskHeaderValue = (value: string): string => {
  const m = SCHEMED.exec(value)
  return m === null ? Masking.mask(value) : `${m[1]} ${Masking.mask(m[2] ?? "")}`
}

/**
 * The request head as shown: values the connection pre-fills as plain header parameters are shown as they are;
 * write-only connection headers and auth headers are masked.
 */
export const maskHeaders = (
  headers: Readonly<Record<string, string | Redacted.Redacted<string>>>,
  plain: ReadonlySet<string>
): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) {
    const text = typeof value === "string" ? value : Redacted.value(value)
    out[name] = plain.has(name.toLowerCase()) ? text : maskHeaderValue(text)
  }
  return out
}

/** The secret values of a credential (by field spec or well-known name), for masking rendered URLs. */
const secretValues = (call: Pick<ResolvedCall, "values" | "pattern">): ReadonlyArray<string> => {
  const specs = [...(call.pattern?.fields ?? []), ...(call.pattern?.account_fields ?? [])]
  const out: Array<string> = []
  for (const [field, value] of Object.entries(call.values)) {
    const spec = specs.find((s) => s.field_name === field) ?? { field_name: field }
    const text = Redacted.value(value)
    if (text.length >= 4 && AuthPattern.isSecretField(spec)) out.push(text)
  }
  return out
}

/** Replace every secret in a rendered URL (as it is, or percent-encoded) with its mask. */
export const maskUrl = (url: string, secrets: ReadonlyArray<string>): string => {
  let out = url
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    for (const form of new Set([secret, encodeURIComponent(secret)])) out = out.split(form).join(Masking.mask(secret))
  }
  return out
}

const describeOwner = (owner: Credential.Owner): string =>
  owner.user !== undefined
    ? `${owner.org}/user:${owner.user}`
    : owner.workspace !== undefined
      ? `${owner.org}/${owner.workspace}`
      : owner.org

/** The chain with each place's outcome: places before the chosen one were missing, later ones not reached. */
export const chainOutcomes = (
  chain: ReadonlyArray<Credential.Lookup>,
  chosen: { readonly scope: Credential.Scope; readonly name: string } | undefined
): ReadonlyArray<typeof ChainEntry.Type> => {
  let reached = false
  return chain.map((lookup) => {
    const isChosen = !reached && chosen !== undefined && lookup.scope === chosen.scope && lookup.name === chosen.name
    const outcome = reached ? "not_reached" : isChosen ? "chosen" : "missing"
    if (isChosen) reached = true
    return { scope: lookup.scope, owner: describeOwner(lookup.owner), name: lookup.name, outcome }
  })
}

/** A sentence saying why this credential (or none) was chosen. */
export const why = (
  connection: Connection.Connection,
  principal: Principal.Principal,
  source: Explanation["credential"]["source"],
  chosen: { readonly scope: Credential.Scope; readonly name: string } | null,
  chain: ReadonlyArray<typeof ChainEntry.Type>
): string => {
  if (source === "inline") return "the connection carries its own credential (security given when it was created)"
  const access =
    connection.access_scope === "personal"
      ? `a personal connection uses its owner's (${connection.owner}) credentials`
      : connection.is_service_account
        ? "an organizational service-account connection never uses a user's credential: workspace, then organization"
        : `an organizational connection uses the caller's (${principal.user}) own credential first, then the workspace's, then the organization's`
  const named =
    connection.credential !== null
      ? `; the connection names ${connection.credential.scope}/${connection.credential.name}`
      : ""
  const looked = chain.map((c) => `${c.scope}/${c.name}`).join(" → ")
  if (source === "none") return `the connector needs no credential`
  if (chosen === null) return `${access}${named}; looked at ${looked}: none found`
  const skipped = chain.filter((c) => c.outcome === "missing").map((c) => c.scope)
  return `${access}${named}; chose ${chosen.scope}/${chosen.name}${
    skipped.length === 0 ? "" : ` (none at ${skipped.join(", ")})`
  }`
}

// ---------------------------------------------------------------------------------------------------------------
// The service

export class Explainer extends Context.Service<
  Explainer,
  {
    /** The dry run of a call through `connection` (an HTTP request, or an MCP tool call), for the current principal. */
    readonly explain: (connection: string, query?: unknown) => Effect.Effect<Explanation, SwitchboardError>
  }
>()("@switchboard/core/Explainer") {}

const notApplicable = (message: string, allowPrivateNetwork: boolean): DestinationVerdict => ({
  decision: "not_applicable",
  host: null,
  addresses: [],
  rule: null,
  allow_private_network: allowPrivateNetwork,
  message
})

const isHttpKind = (connector: Connector.Connector) => connector.kind === "http" || connector.kind === "rest_api"

export const make = Effect.gen(function* () {
  const sb = yield* Switchboard
  const resilience = yield* Resilience.Resilience
  const guard = yield* DestinationGuard

  const explain = Effect.fn("Explainer.explain")(function* (connectionRef: string, input: unknown = {}) {
    const query = yield* Validation.decode(ExplainQuery, "query")(input)
    const principal = yield* Principal.CurrentPrincipal
    const connection = yield* sb.getConnection(connectionRef)
    const decision = Principal.authorize(principal, "connection:use")
    const chainResult = Credential.resolutionChain(Connection.binding(connection), principal)
    const chain = Result.isSuccess(chainResult) ? chainResult.success : []
    const policy = {
      action: "connection:use",
      allowed: decision.allowed && Result.isSuccess(chainResult),
      reason: !decision.allowed ? decision.reason : Result.isFailure(chainResult) ? chainResult.failure.message : null
    }
    const resolved = policy.allowed ? yield* Effect.result(sb.resolveCall(connection.id)) : undefined
    const call = resolved !== undefined && Result.isSuccess(resolved) ? resolved.success : undefined
    let error: Explanation["error"] =
      resolved !== undefined && Result.isFailure(resolved)
        ? { code: resolved.failure.code, message: resolved.failure.message }
        : null
    const connector =
      call?.connector ??
      (connection.connector_version === null
        ? yield* sb.getConnector(connection.connector_id)
        : yield* sb.getConnectorVersion(connection.connector_id, connection.connector_version))

    // The credential: where it came from, and the chain with each place's outcome.
    const source: Explanation["credential"]["source"] =
      call === undefined
        ? connection.has_security
          ? "inline"
          : "unresolved"
        : call.source._tag === "Inline"
          ? "inline"
          : call.source._tag === "Stored"
            ? "stored"
            : "none"
    const chosen =
      call !== undefined && call.source._tag === "Stored"
        ? { id: call.source.id, scope: call.source.scope, name: call.source.name }
        : null
    const outcomes = connection.has_security ? [] : chainOutcomes(chain, chosen ?? undefined)
    const auth_type =
      call?.pattern?.type ??
      connection.auth_type ??
      (connector.auth_patterns.length === 1 ? (connector.auth_patterns[0]?.type ?? null) : null)

    // What would be sent: URL and headers, secrets masked.
    const tool = query.tool ?? null
    const method = tool === null ? (query.method ?? "GET").toUpperCase() : null
    const path = tool === null ? (query.path ?? "/") : null
    let url: string | null = null
    let headers: Record<string, string> = {}
    let ssrf = notApplicable("nothing to check: the call cannot be rendered", connection.allow_private_network)
    if (call !== undefined) {
      const plain = new Set(Object.keys(connection.parameters.header ?? {}).map((h) => h.toLowerCase()))
      const head = Proxy.requestHeaders({}, call, false)
      if (Result.isSuccess(head)) headers = maskHeaders(head.success, plain)
      const secrets = secretValues(call)
      let destination: string | undefined
      if (tool === null) {
        const base = Proxy.baseUrl(call)
        if (Result.isFailure(base)) {
          error = { code: base.failure.code, message: base.failure.message }
        } else if (method !== null && !Proxy.methods.has(method)) {
          error = { code: "invalid_parameter", message: `method ${method} cannot be proxied` }
        } else {
          const masked: Record<string, Redacted.Redacted<string>> = {}
          for (const [k, v] of Object.entries(call.auth.query))
            masked[k] = Redacted.make(Masking.mask(Redacted.value(v)))
          const where = Proxy.target(base.success, { path: path ?? "/" }, call.query, masked)
          if (Result.isFailure(where)) error = { code: where.failure.code, message: where.failure.message }
          else {
            url = maskUrl(where.success.url, secrets)
            destination = base.success.href
          }
        }
      } else if (connector.kind !== "mcp") {
        error = {
          code: "invalid_parameter",
          message: `connector ${connector.name} is not an MCP server: it has no tools`
        }
      } else if (call.baseUrl !== undefined) {
        url = maskUrl(call.baseUrl, secrets)
        destination = call.baseUrl
      } else {
        ssrf = notApplicable("a local MCP program: no network destination", connection.allow_private_network)
      }
      if (destination !== undefined) {
        ssrf = yield* guard.check(destination, { allowPrivateNetwork: connection.allow_private_network })
      }
    } else if (!isHttpKind(connector) && connector.kind !== "mcp") {
      ssrf = notApplicable(`a ${connector.kind} connector is checked by its probe`, connection.allow_private_network)
    }

    const rate = connection.rate_limit
    const explanation: Explanation = {
      connection: {
        id: connection.id,
        name: connection.name,
        connector: connector.name,
        connector_version: connector.version,
        pinned: connection.connector_version !== null,
        kind: connector.kind,
        access_scope: connection.access_scope,
        is_service_account: connection.is_service_account,
        owner: connection.owner,
        status: connection.status
      },
      principal,
      policy,
      credential: {
        source,
        chosen,
        auth_type,
        fields: call === undefined ? [] : Object.keys(call.values).sort(),
        chain: outcomes,
        why: why(connection, principal, source, chosen, outcomes)
      },
      mutations: call === undefined ? [] : mutationsApplied(call.pattern, call.values),
      request: { method, path, tool, url, headers },
      resilience: {
        circuit: yield* resilience.circuit(connection.id),
        rate_limit: {
          requests_per_second: rate?.requests_per_second ?? Resilience.defaults.rateLimit.requestsPerSecond,
          burst: rate?.burst ?? Resilience.defaults.rateLimit.burst,
          tokens_available: yield* resilience.tokens(connection.id, Resilience.rateLimitOf(rate)),
          source: rate === undefined ? "default" : "connection"
        }
      },
      ssrf,
      error,
      sent: false
    }
    return explanation
  })

  return Explainer.of({ explain })
})

/** The explainer over a given `Resilience` (share the proxy's, so the breaker state is the one calls see). */
export const layerNoDeps = Layer.effect(Explainer, make)

/** The explainer with the default `Resilience` (the same layer the proxy uses, so one instance when built together). */
export const layer = layerNoDeps.pipe(Layer.provide(Resilience.layer))
