/**
 * The names under which upstream tools are offered to agents: `<connection>__<tool>`, made to fit the
 * strictest rule clients apply, collisions resolved deterministically, and every name mapped back to the
 * connection and the tool's original name. The MCP server and the agent-framework integrations share it, so
 * an agent sees the same names whichever way it comes in.
 *
 * The rule is `^[A-Za-z0-9_-]{1,64}$`: the MCP specification (SEP-986) allows 1-128 characters of
 * `[A-Za-z0-9._-]`, but model APIs (Anthropic, OpenAI function names) accept only letters, digits, `_` and
 * `-`, at most 64. Names that break it after sanitising, or that collide, get a suffix: a short stable hash of
 * the connection id and the original tool name, so a name does not depend on the order tools were listed in
 * and does not change when another connection comes or goes unless that one collides with it.
 */
import * as Option from "effect/Option"

/** The longest name clients accept. */
export const MAX_LENGTH = 64

/** Between the connection and the tool. */
export const SEPARATOR = "__"

/** What a valid name looks like. */
export const PATTERN = /^[A-Za-z0-9_-]{1,64}$/u

const INVALID_RUN = /[^A-Za-z0-9_-]+/gu

/** Whether `name` fits the rule as it is. */
export const isValid = (name: string): boolean => PATTERN.test(name)

/** `part` with each run of characters outside `[A-Za-z0-9_-]` replaced by one `_` (`"Prod Slack"` → `"Prod_Slack"`). */
export const sanitize = (part: string): string => {
  const out = part.replace(INVALID_RUN, "_")
  return out === "" ? "_" : out
}

const encoder = new TextEncoder()

/** 8 hex digits: FNV-1a (32 bits) over the UTF-8 bytes of `text`. Stable across processes and versions. */
export const shortHash = (text: string): string => {
  let hash = 0x811c9dc5
  for (const byte of encoder.encode(text)) {
    hash ^= byte
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash.toString(16).padStart(8, "0")
}

/** One tool of one connection. */
export interface ToolRef {
  /** The connection's stable id (`conn_…`): it goes into the collision hash, so renaming is harmless. */
  readonly connectionId: string
  /** The connection's name: the readable prefix. */
  readonly connectionName: string
  /** The tool's name as the upstream gives it. */
  readonly tool: string
}

/** `<connection>__<tool>`, sanitised but not yet shortened. */
export const baseName = (ref: Pick<ToolRef, "connectionName" | "tool">): string =>
  `${sanitize(ref.connectionName)}${SEPARATOR}${sanitize(ref.tool)}`

/** `base` cut to leave room for `_<suffix>` within `MAX_LENGTH`. */
const withSuffix = (base: string, suffix: string): string =>
  `${base.slice(0, MAX_LENGTH - suffix.length - 1)}_${suffix}`

/** The hashed form of a ref's name. */
export const hashedName = (ref: ToolRef): string =>
  withSuffix(baseName(ref), shortHash(`${ref.connectionId}\u0000${ref.tool}`))

/** A ref and the name it is offered under. */
export interface Named<R extends ToolRef> {
  readonly name: string
  readonly ref: R
}

/** The names of a set of tools, both ways. */
export interface ToolNames<R extends ToolRef> {
  /** Every ref with its name, in the order the refs were given (duplicates of a ref dropped). */
  readonly entries: ReadonlyArray<Named<R>>
  /** The ref a name stands for. */
  readonly resolve: (name: string) => Option.Option<R>
  /** The name of a connection's tool. */
  readonly nameOf: (connectionId: string, tool: string) => Option.Option<string>
}

export interface AssignOptions {
  /** Names already taken (e.g. the server's own tools): a tool whose name would be one of them is suffixed. */
  readonly reserved?: Iterable<string> | undefined
}

const refKey = (ref: ToolRef) => `${ref.connectionId}\u0000${ref.tool}`

/**
 * Name every ref. A ref keeps its plain `<connection>__<tool>` when that is valid, unique among the refs and not
 * reserved; otherwise it gets the hashed form. The result depends only on the set of refs, not their order.
 * If even hashed names collide (a tool literally named like another's hashed name, or a hash collision), the
 * refs involved are taken in a fixed order and numbered.
 */
export const assign = <R extends ToolRef>(refs: Iterable<R>, options: AssignOptions = {}): ToolNames<R> => {
  const reserved = new Set(options.reserved ?? [])
  const unique: Array<R> = []
  const seen = new Set<string>()
  for (const ref of refs) {
    const key = refKey(ref)
    if (seen.has(key)) continue
    seen.add(key)
    unique.push(ref)
  }

  const bases = unique.map(baseName)
  const baseCounts = new Map<string, number>()
  for (const base of bases) baseCounts.set(base, (baseCounts.get(base) ?? 0) + 1)
  const candidates = unique.map((ref, i) => {
    const base = bases[i] ?? baseName(ref)
    const plain = base.length <= MAX_LENGTH && baseCounts.get(base) === 1 && !reserved.has(base)
    return plain ? base : hashedName(ref)
  })

  const candidateCounts = new Map<string, number>()
  for (const name of candidates) candidateCounts.set(name, (candidateCounts.get(name) ?? 0) + 1)
  const names: Array<string | undefined> = candidates.map((name) =>
    candidateCounts.get(name) === 1 && !reserved.has(name) ? name : undefined
  )
  const taken = new Set<string>([...reserved, ...names.filter((n): n is string => n !== undefined)])
  const leftovers = unique
    .map((ref, i) => ({ ref, i }))
    .filter(({ i }) => names[i] === undefined)
    .sort((a, b) => {
      const ka = refKey(a.ref)
      const kb = refKey(b.ref)
      return ka < kb ? -1 : ka > kb ? 1 : 0
    })
  for (const { i } of leftovers) {
    const candidate = candidates[i] ?? ""
    let name = candidate
    for (let n = 2; taken.has(name); n++) name = withSuffix(candidate, String(n))
    taken.add(name)
    names[i] = name
  }

  const entries: Array<Named<R>> = unique.map((ref, i) => ({ name: names[i] ?? "", ref }))
  const byName = new Map(entries.map((e) => [e.name, e.ref] as const))
  const byRef = new Map(entries.map((e) => [refKey(e.ref), e.name] as const))
  return {
    entries,
    resolve: (name) => Option.fromNullishOr(byName.get(name)),
    nameOf: (connectionId, tool) => Option.fromNullishOr(byRef.get(`${connectionId}\u0000${tool}`))
  }
}
