/**
 * The tamper-evident audit chain: every audit record of an organization carries its sequence number, the hash of
 * the previous record of that organization, and its own hash, SHA-256 over a canonical encoding of the three
 * (`canonical`). Editing a record breaks its hash; deleting or reordering one breaks the next record's link; the
 * stored head (last sequence number and hash) catches a deleted tail.
 *
 * The hash is computed by the store adapter, inside the transaction that appends the record, so two processes
 * sharing one database (the daemon and an embedded CLI) cannot both chain onto the same predecessor; a `Hasher`
 * port called from core could not make read-previous-then-append atomic. Core keeps the rules: the canonical
 * encoding and the verification, pure, with the digest function supplied by the port (core has no crypto).
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { AuditRecord } from "./AuditLog.ts"
import { canonicalJson, type Digest } from "./Canonical.ts"
import type { StoreError } from "./Errors.ts"

/** The `prev_hash` of the first record of an organization's chain. */
export const genesis = "0".repeat(64)

/** A record with its place in the chain. */
export const ChainedRecord = Schema.Struct({
  seq: Schema.Int,
  prev_hash: Schema.String,
  hash: Schema.String,
  record: AuditRecord
})
export type ChainedRecord = typeof ChainedRecord.Type

/** A stored link as read back: the record may no longer decode (edited by hand). */
export interface Link {
  readonly seq: number
  readonly prev_hash: string
  readonly hash: string
  readonly id: string
  readonly record: AuditRecord | undefined
}

export interface Head {
  readonly seq: number
  readonly hash: string
}

/**
 * The canonical encoding hashed: `Canonical.canonicalJson` of `{seq, prev_hash, record}` (keys sorted at every
 * level, no whitespace, absent keys left out). Stored chains depend on these bytes: never change them.
 */
export const canonical = (seq: number, prevHash: string, record: AuditRecord): string =>
  canonicalJson({ seq, prev_hash: prevHash, record })

export const Problem = Schema.Struct({
  seq: Schema.NullOr(Schema.Int),
  id: Schema.NullOr(Schema.String),
  problem: Schema.Literals(["edited", "unreadable", "missing", "reordered", "broken_link", "truncated"]),
  message: Schema.String
})
export type Problem = typeof Problem.Type

export const Verification = Schema.Struct({
  org: Schema.String,
  ok: Schema.Boolean,
  records: Schema.Int,
  /** Records written before the chain existed (migration 3): kept, not verifiable. */
  unchained: Schema.Int,
  head: Schema.NullOr(Schema.Struct({ seq: Schema.Int, hash: Schema.String })),
  problems: Schema.Array(Problem)
})
export type Verification = typeof Verification.Type

/**
 * Verify an organization's chain: links in stored sequence order, the stored head, and the digest (hex SHA-256).
 * Reports every problem, not just the first.
 */
export const verify = (
  org: string,
  links: ReadonlyArray<Link>,
  head: Head | undefined,
  unchained: number,
  digest: Digest
): Verification => {
  const problems: Array<Problem> = []
  const hashes = new Map(links.map((l) => [l.hash, l.seq]))
  let prevHash = genesis
  let prevSeq = 0
  for (const link of links) {
    const at = { seq: link.seq, id: link.id }
    if (link.record === undefined) {
      problems.push({ ...at, problem: "unreadable", message: `record ${link.seq} (${link.id}) no longer decodes` })
    } else if (link.record.id !== link.id || digest(canonical(link.seq, link.prev_hash, link.record)) !== link.hash) {
      problems.push({ ...at, problem: "edited", message: `record ${link.seq} (${link.id}) does not match its hash` })
    }
    if (link.prev_hash !== prevHash) {
      const pointsAt = hashes.get(link.prev_hash)
      if (link.seq !== prevSeq + 1 && (pointsAt === undefined || pointsAt < link.seq)) {
        problems.push({
          ...at,
          problem: "missing",
          message: `record(s) ${prevSeq + 1}…${link.seq - 1} before record ${link.seq} are missing`
        })
      } else if (pointsAt !== undefined) {
        problems.push({
          ...at,
          problem: "reordered",
          message: `record ${link.seq} (${link.id}) follows record ${pointsAt}, not record ${prevSeq}`
        })
      } else {
        problems.push({
          ...at,
          problem: "broken_link",
          message: `record ${link.seq} (${link.id}) does not link to the record before it`
        })
      }
    } else if (link.seq !== prevSeq + 1) {
      problems.push({ ...at, problem: "reordered", message: `record ${link.seq} is numbered out of sequence` })
    }
    prevHash = link.hash
    prevSeq = link.seq
  }
  if (head !== undefined && (head.seq !== prevSeq || head.hash !== prevHash)) {
    problems.push({
      seq: head.seq,
      id: null,
      problem: "truncated",
      message:
        head.seq > prevSeq
          ? `the chain ends at record ${prevSeq} but its head says ${head.seq}: records were removed from the end`
          : `the chain's head (record ${head.seq}) does not match its last record (${prevSeq})`
    })
  }
  if (head === undefined && links.length > 0) {
    problems.push({ seq: null, id: null, problem: "truncated", message: "the chain's head is missing" })
  }
  return {
    org,
    ok: problems.length === 0,
    records: links.length,
    unchained,
    head: head === undefined ? null : { seq: head.seq, hash: head.hash },
    problems
  }
}

/** Port: read the chain back, implemented by each store adapter beside its `AuditLog`. */
export class AuditChain extends Context.Service<
  AuditChain,
  {
    /** The organizations with audit records. */
    readonly orgs: () => Effect.Effect<ReadonlyArray<string>, StoreError>
    /** Every chained record of `org`, in chain order; `unchained` counts records from before the chain. */
    readonly links: (
      org: string
    ) => Effect.Effect<
      { readonly links: ReadonlyArray<Link>; readonly head: Head | undefined; readonly unchained: number },
      StoreError
    >
    /** Hex SHA-256 of a text (the adapter's crypto; core has none). */
    readonly digest: Digest
  }
>()("@switchboard/core/AuditChain") {}
