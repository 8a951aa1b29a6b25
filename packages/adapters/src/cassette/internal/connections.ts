/**
 * What the cassette layers learn from `Switchboard.resolveCall`: the name of each connection (cassettes are named
 * after connections, which keep their names across data directories while ids do not), the secrets a call
 * carries, and which query parameters hold them. In replay, a connection without credentials resolves to a
 * placeholder call instead of failing: the cassette answers, nothing is sent, so no secret is needed.
 */
import * as AuthPattern from "@switchboard/core/AuthPattern"
import * as Connector from "@switchboard/core/Connector"
import type { SwitchboardError } from "@switchboard/core/Errors"
import * as FieldMutation from "@switchboard/core/FieldMutation"
import { type ResolvedCall, Switchboard } from "@switchboard/core/Switchboard"
import * as Template from "@switchboard/core/Template"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import { formsOf, scrubber } from "../Cassette.ts"

/** The value every credential field takes in replay when the connection has none. */
export const PLACEHOLDER = "replay"

export class Registry {
  private readonly names = new Map<string, string>()
  private readonly queryNames = new Map<string, ReadonlySet<string>>()
  private readonly plainHeaders = new Map<string, ReadonlySet<string>>()
  private readonly secrets = new Set<string>()
  private scrub: ((text: string) => string) | undefined

  /** Remember what a resolved call tells about its connection. */
  learn(call: ResolvedCall): void {
    const { connection } = call
    this.names.set(connection.id, connection.name)
    this.queryNames.set(connection.id, new Set(Object.keys(call.auth.query)))
    const specs = [...(call.pattern?.fields ?? []), ...(call.pattern?.account_fields ?? [])]
    const values: Array<string> = []
    for (const [name, value] of Object.entries(call.values)) {
      const spec = specs.find((s) => s.field_name === name) ?? { field_name: name }
      if (AuthPattern.isSecretField(spec)) values.push(Redacted.value(value))
    }
    for (const value of Object.values(call.auth.headers)) values.push(Redacted.value(value))
    for (const value of Object.values(call.auth.query)) values.push(Redacted.value(value))
    // Write-only connection headers are secrets; pre-filled header parameters are plain values.
    const parameters = new Set(Object.keys(connection.parameters.header ?? {}).map((n) => n.toLowerCase()))
    this.plainHeaders.set(connection.id, parameters)
    for (const [name, value] of Object.entries(call.headers)) {
      if (!parameters.has(name.toLowerCase())) values.push(Redacted.value(value))
    }
    this.add(values)
  }

  /** Secrets learned elsewhere (an MCP target's headers, query, env). */
  add(values: Iterable<string>): void {
    let changed = false
    for (const value of values) {
      if (value === PLACEHOLDER || this.secrets.has(value)) continue
      this.secrets.add(value)
      changed = true
    }
    if (changed) this.scrub = undefined
  }

  /** Blank every secret learned so far, whichever connection it belongs to. */
  scrubber(): (text: string) => string {
    this.scrub ??= scrubber(formsOf(this.secrets))
    return this.scrub
  }

  /** The connection name of an id; the id itself when no call of it was resolved. */
  nameOf(id: string): string {
    return this.names.get(id) ?? id
  }

  /**
   * The secret values among the headers a request carries: every `Redacted` one (auth, write-only connection
   * headers) but the connection's pre-filled header parameters, which are plain values.
   */
  secretHeaderValues(
    id: string | undefined,
    headers: Readonly<Record<string, string | Redacted.Redacted<string>>>
  ): Array<string> {
    return Object.entries(headers).flatMap(([name, value]) =>
      Redacted.isRedacted(value) && !this.isPlainHeader(id, name) ? [Redacted.value(value)] : []
    )
  }

  /** Whether a header is one of the connection's pre-filled header parameters (a plain value). */
  isPlainHeader(id: string | undefined, name: string): boolean {
    return id !== undefined && this.plainHeaders.get(id)?.has(name.toLowerCase()) === true
  }

  /** The query parameters that carry the connection's auth. */
  secretQueryNames(id: string | undefined): ReadonlySet<string> {
    return (id === undefined ? undefined : this.queryNames.get(id)) ?? new Set()
  }
}

/** A call for a connection without credentials: every credential field is a placeholder, no auth is sent. */
const placeholderCall = (sb: Switchboard["Service"], ref: string) =>
  Effect.gen(function* () {
    const connection = yield* sb.getConnection(ref)
    const connector =
      connection.connector_version === null
        ? yield* sb.getConnector(connection.connector_id)
        : yield* sb.getConnectorVersion(connection.connector_id, connection.connector_version)
    const pattern =
      connector.auth_patterns.length === 0
        ? undefined
        : Connector.patternFor(connector, connection.auth_type ?? undefined)
    const names = new Set<string>([
      ...(pattern?.fields ?? []).map((f) => f.field_name),
      ...(pattern?.account_fields ?? []).map((f) => f.field_name),
      ...(connector.proxy_url === undefined ? [] : Template.fieldNames(connector.proxy_url)),
      ...Object.values(connector.command?.env ?? {}).flatMap((t) => Template.fieldNames(t))
    ])
    const plain: Record<string, string> = {}
    for (const name of names) plain[name] = PLACEHOLDER
    const values: Record<string, Redacted.Redacted<string>> = {}
    for (const name of names) values[name] = Redacted.make(PLACEHOLDER)
    const server = connection.servers[0]
    let baseUrl: string | undefined = server?.url
    if (baseUrl === undefined && connector.proxy_url !== undefined) {
      const rendered = Template.render(connector.proxy_url, { ...plain, ...connection.parameters.path })
      baseUrl = Result.isSuccess(rendered) ? rendered.success : undefined
    }
    const headers: Record<string, Redacted.Redacted<string>> = {}
    for (const [k, v] of Object.entries(connection.parameters.header ?? {})) headers[k] = Redacted.make(v)
    const call: ResolvedCall = {
      connection,
      connector,
      pattern,
      baseUrl,
      auth: FieldMutation.none,
      headers,
      query: connection.parameters.query ?? {},
      values,
      source: { _tag: "None" }
    }
    return call
  })

/**
 * The Switchboard with `resolveCall` feeding the registry; in replay, a missing credential resolves to a
 * placeholder call.
 */
export const decorate = (sb: Switchboard["Service"], registry: Registry, replay: boolean): Switchboard["Service"] =>
  Switchboard.of({
    ...sb,
    resolveCall: (ref: string): Effect.Effect<ResolvedCall, SwitchboardError> => {
      const resolved = replay
        ? sb.resolveCall(ref).pipe(Effect.catchTag("CredentialMissing", () => placeholderCall(sb, ref)))
        : sb.resolveCall(ref)
      return Effect.tap(resolved, (call) => Effect.sync(() => registry.learn(call)))
    }
  })
