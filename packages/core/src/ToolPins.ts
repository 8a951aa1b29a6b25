/**
 * Tool-manifest pinning: the defence against an MCP server that changes its tools after they were trusted (the
 * "rug pull" of tool poisoning, where a harmless description later grows instructions for the agent).
 *
 * The first time a connection's tools are listed (per connector version), each tool's name, title, description,
 * input and output schema and annotations are pinned: kept in full (so a later change can be shown as a diff) with
 * a SHA-256 over their canonical JSON (keys sorted at every level). A later listing that differs (a new tool, a
 * removed one, any changed field) is reported field by field, descriptions in full. What happens then is the
 * connector's policy, its metadata key `tool_pinning`: `warn` (the default: the tools pass, the change is audited
 * and logged) or `block` (new and changed tools are withheld from listings and refused with 409
 * `tool_not_approved` until `switchboard tools approve`; unchanged pinned tools keep working). Any other value
 * blocks: a misspelt policy fails closed.
 *
 * A new connector version starts from the pin of the previous one (not from what the server says now), so
 * updating a connector, e.g. to switch the policy to `block`, never approves a pending change by itself.
 *
 * This module holds the pure rules (the hash, the diff), the `ToolPins` storage port, and the `ToolPinning` service
 * the API and CLI use to show and approve; `Tools` applies the pins on every listing and call. Canonical JSON is
 * `Canonical.canonicalJson`; the SHA-256 is the port's `digest` (the adapter's node:crypto, as for `AuditChain`).
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { canonicalJson, type Digest } from "./Canonical.ts"
import type { StoreError, SwitchboardError } from "./Errors.ts"
import type { McpTool } from "./McpUpstream.ts"

// ---------------------------------------------------------------------------------------------------------------
// Pinned definitions, hashes and the diff

/** The fields of a tool that are pinned: everything an agent reads or sends. */
export const pinnedFields = ["name", "title", "description", "inputSchema", "outputSchema", "annotations"] as const
export type PinnedField = (typeof pinnedFields)[number]

const JsonObject = Schema.Record(Schema.String, Schema.Unknown)

/** A tool's pinned fields, as stored and shown. */
export const Definition = Schema.Struct({
  name: Schema.String,
  title: Schema.optionalKey(Schema.String),
  description: Schema.optionalKey(Schema.String),
  inputSchema: JsonObject,
  outputSchema: Schema.optionalKey(JsonObject),
  annotations: Schema.optionalKey(JsonObject)
})
export type Definition = typeof Definition.Type

/** The pinned fields of a tool (anything else the server sends, and absent fields, left out). */
export const definitionOf = (tool: McpTool): Definition => ({
  name: tool.name,
  ...(tool.title === undefined ? {} : { title: tool.title }),
  ...(tool.description === undefined ? {} : { description: tool.description }),
  inputSchema: tool.inputSchema,
  ...(tool.outputSchema === undefined ? {} : { outputSchema: tool.outputSchema }),
  ...(tool.annotations === undefined ? {} : { annotations: tool.annotations })
})

// Tool definitions are immutable values (the upstream adapter keeps the same objects while its list is cached), so
// a hash is computed once per object (and per digest function: adapters pass one shared function).
const hashes = new WeakMap<Digest, WeakMap<McpTool, string>>()

/** SHA-256 (hex) of the canonical JSON of a tool's pinned fields: stable under key order, changed by any edit. */
export const toolHash = (tool: McpTool, digest: Digest): string => {
  let cache = hashes.get(digest)
  if (cache === undefined) {
    cache = new WeakMap()
    hashes.set(digest, cache)
  }
  let hash = cache.get(tool)
  if (hash === undefined) {
    hash = digest(canonicalJson(definitionOf(tool)))
    cache.set(tool, hash)
  }
  return hash
}

/** The hash of a whole manifest: of its tools' names and hashes, in name order. */
export const manifestHash = (tools: ReadonlyArray<McpTool>, digest: Digest): string =>
  digest(
    canonicalJson(
      tools
        .map((t) => [t.name, toolHash(t, digest)])
        .sort(([a], [b]) => ((a as string) < (b as string) ? -1 : (a as string) > (b as string) ? 1 : 0))
    )
  )

/** One field of a tool that differs: its value before (the pin) and after (the server now); absent when absent. */
export const FieldChange = Schema.Struct({
  field: Schema.Literals(pinnedFields),
  before: Schema.optionalKey(Schema.Unknown),
  after: Schema.optionalKey(Schema.Unknown)
})
export type FieldChange = typeof FieldChange.Type

export const ChangeKind = Schema.Literals(["added", "removed", "changed"])
export type ChangeKind = typeof ChangeKind.Type

/** How one tool differs from its pin. An added tool lists every field as `after`, a removed one as `before`. */
export const ToolChange = Schema.Struct({
  tool: Schema.String,
  change: ChangeKind,
  before_hash: Schema.NullOr(Schema.String),
  after_hash: Schema.NullOr(Schema.String),
  fields: Schema.Array(FieldChange)
})
export type ToolChange = typeof ToolChange.Type

const byName = (tools: ReadonlyArray<McpTool>): ReadonlyMap<string, McpTool> =>
  new Map(tools.map((t) => [t.name, t] as const))

const fieldsOf = (before: Definition | undefined, after: Definition | undefined): ReadonlyArray<FieldChange> => {
  const out: Array<FieldChange> = []
  for (const field of pinnedFields) {
    const b: unknown = before?.[field]
    const a: unknown = after?.[field]
    if (canonicalJson(b) === canonicalJson(a)) continue
    out.push({ field, ...(b === undefined ? {} : { before: b }), ...(a === undefined ? {} : { after: a }) })
  }
  return out
}

/** What changed from the pinned tools to the current ones, by tool name (empty when nothing did). */
export const diff = (
  pinned: ReadonlyArray<McpTool>,
  current: ReadonlyArray<McpTool>,
  digest: Digest
): ReadonlyArray<ToolChange> => {
  const before = byName(pinned)
  const after = byName(current)
  const names = [...new Set([...before.keys(), ...after.keys()])].sort()
  const changes: Array<ToolChange> = []
  for (const name of names) {
    const b = before.get(name)
    const a = after.get(name)
    const bh = b === undefined ? null : toolHash(b, digest)
    const ah = a === undefined ? null : toolHash(a, digest)
    if (bh === ah) continue
    changes.push({
      tool: name,
      change: b === undefined ? "added" : a === undefined ? "removed" : "changed",
      before_hash: bh,
      after_hash: ah,
      fields: fieldsOf(b === undefined ? undefined : definitionOf(b), a === undefined ? undefined : definitionOf(a))
    })
  }
  return changes
}

/** The names of the current tools that match their pin exactly (the ones a blocking policy lets through). */
export const approvedNames = (
  pinned: ReadonlyArray<McpTool>,
  current: ReadonlyArray<McpTool>,
  digest: Digest
): ReadonlySet<string> => {
  const hashes = new Map(pinned.map((t) => [t.name, toolHash(t, digest)] as const))
  return new Set(current.filter((t) => hashes.get(t.name) === toolHash(t, digest)).map((t) => t.name))
}

/** The pinned tools with one tool approved as it is now: added, replaced, or dropped when the server removed it. */
export const approveOne = (
  pinned: ReadonlyArray<McpTool>,
  current: ReadonlyArray<McpTool>,
  name: string
): ReadonlyArray<McpTool> => {
  const now = current.find((t) => t.name === name)
  const rest = pinned.filter((t) => t.name !== name)
  return now === undefined ? rest : [...rest, now]
}

// ---------------------------------------------------------------------------------------------------------------
// Policy

export const Policy = Schema.Literals(["warn", "block"])
export type Policy = typeof Policy.Type

/** The connector metadata key that holds the policy. */
export const POLICY_KEY = "tool_pinning"

/** A connector's policy: `warn` when absent or `warn`, `block` for `block` and for anything else (fail closed). */
export const policyOf = (connector: { readonly metadata?: Readonly<Record<string, string>> | undefined }): Policy => {
  const value = connector.metadata?.[POLICY_KEY]
  return value === undefined || value.trim().toLowerCase() === "warn" ? "warn" : "block"
}

// ---------------------------------------------------------------------------------------------------------------
// Storage port

/** A stored pin: the manifest of one connection at one connector version, as approved. */
export const Manifest = Schema.Struct({
  org: Schema.String,
  connection_id: Schema.String,
  connector_id: Schema.String,
  connector_version: Schema.Int,
  /** `manifestHash` of the tools. */
  hash: Schema.String,
  tools: Schema.Array(Definition),
  pinned_at: Schema.String,
  /** Who approved it; `trust-on-first-use` for the first listing. */
  pinned_by: Schema.String
})
export type Manifest = typeof Manifest.Type

/** Who pinned a manifest that nobody approved: the first listing. */
export const FIRST_USE = "trust-on-first-use"

export class ToolPins extends Context.Service<
  ToolPins,
  {
    /** The pin of a connection at a connector version. */
    readonly get: (
      org: string,
      connectionId: string,
      connectorVersion: number
    ) => Effect.Effect<Option.Option<Manifest>, StoreError>
    /** The pin of the connection's highest connector version (the baseline of a new version). */
    readonly latest: (org: string, connectionId: string) => Effect.Effect<Option.Option<Manifest>, StoreError>
    /** Store a pin unless its (connection, version) has one already; answers the pin that is stored. */
    readonly pin: (manifest: Manifest) => Effect.Effect<Manifest, StoreError>
    /** Store a pin, replacing any of its (connection, version): an approval. */
    readonly replace: (manifest: Manifest) => Effect.Effect<void, StoreError>
    /** Hex SHA-256 of a text, for the hashes above (the adapter's crypto; core has none). */
    readonly digest: Digest
  }
>()("@switchboard/core/ToolPins") {}

// ---------------------------------------------------------------------------------------------------------------
// Showing and approving

/** A connection's pin against what its server offers now. */
export const PinsView = Schema.Struct({
  connection: Schema.String,
  connection_name: Schema.String,
  connector_id: Schema.String,
  connector_version: Schema.Int,
  policy: Policy,
  pinned_at: Schema.String,
  pinned_by: Schema.String,
  pinned_hash: Schema.String,
  current_hash: Schema.String,
  /** The pinned tools by name and hash. */
  pinned: Schema.Array(Schema.Struct({ name: Schema.String, hash: Schema.String })),
  /** How the server's tools differ from the pin (empty: nothing pending). */
  changes: Schema.Array(ToolChange),
  /** The current tools that differ from their pin: withheld under `block`, passed with a warning under `warn`. */
  withheld: Schema.Array(Schema.String)
}).annotate({ identifier: "ToolPins" })
export type PinsView = typeof PinsView.Type

/**
 * What `POST …/tools/approve` takes: one tool, or (absent) the whole current manifest; and optionally the hash that
 * was reviewed (`current_hash` of the diff, or with `tool` its `after_hash`), so a server that changed again after
 * the review is not approved blindly (409 `version_conflict`).
 */
export const ApproveInput = Schema.Struct({
  tool: Schema.optionalKey(Schema.String.check(Schema.isMinLength(1))),
  hash: Schema.optionalKey(Schema.String.check(Schema.isPattern(/^[0-9a-f]{64}$/u)))
})
export type ApproveInput = typeof ApproveInput.Type

/** The view of a pin against the current tools. */
export const viewOf = (
  connection: { readonly id: string; readonly name: string },
  pin: Manifest,
  current: ReadonlyArray<McpTool>,
  policy: Policy,
  digest: Digest
): PinsView => {
  const approved = approvedNames(pin.tools, current, digest)
  return {
    connection: connection.id,
    connection_name: connection.name,
    connector_id: pin.connector_id,
    connector_version: pin.connector_version,
    policy,
    pinned_at: pin.pinned_at,
    pinned_by: pin.pinned_by,
    pinned_hash: pin.hash,
    current_hash: manifestHash(current, digest),
    pinned: pin.tools.map((t) => ({ name: t.name, hash: toolHash(t, digest) })),
    changes: diff(pin.tools, current, digest),
    withheld: current.filter((t) => !approved.has(t.name)).map((t) => t.name)
  }
}

/** Show and approve pins; `Tools.layer` provides it next to `Tools`, the daemon client through the API. */
export class ToolPinning extends Context.Service<
  ToolPinning,
  {
    /** The connection's pin against its server's tools now (listing them pins on first use). */
    readonly show: (connection: string) => Effect.Effect<PinsView, SwitchboardError>
    /**
     * Approve the current manifest, or one tool of it, as the new pin; with `hash`, only if that is still what the
     * server offers. Needs `connection:write`.
     */
    readonly approve: (connection: string, input?: ApproveInput) => Effect.Effect<PinsView, SwitchboardError>
  }
>()("@switchboard/core/ToolPins/ToolPinning") {}
