/**
 * The tamper-evident audit chain: every audit record of an organization carries its sequence number, the hash of
 * the previous record of that organization, and its own hash, SHA-256 over a canonical encoding of the three
 * (`canonical`). Editing a record breaks its hash; deleting or reordering one breaks the next record's link; the
 * stored head (last sequence number and hash) catches a deleted tail.
 *
 * The hashes are unkeyed: someone who can write the database could edit a record and recompute every later hash
 * and the plain head. So the stores also keep the head sealed with the master key (`sealedHeadText`, sealed by the
 * `Sealer` under the context ("audit_heads", org): authenticated, bound to its org). Without the key a rewritten or
 * truncated chain cannot carry a matching sealed head: `verify` reports `head_forged` (or `truncated`). An append
 * re-seals a head only when its seal opens and equals it, so writing on does not launder a forgery. Someone
 * holding the master key can still rewrite everything, and a sealed head copied back from an older backup (with
 * the chain cut to match) is not told apart from the real one.
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
  /** The sealed copy of the head as the reader opened it; absent for a store that does not seal (memory). */
  readonly seal?: HeadSeal | undefined
}

/**
 * The sealed head as the store's reader found it: opened (its contents), not sealed yet (a database from before
 * the stores sealed heads, schema 6: the store seals its heads when it opens it), not openable (forged, removed,
 * or sealed under another key), or not checked (the reader has no master key).
 */
export type HeadSeal =
  | { readonly _tag: "opened"; readonly org: string; readonly seq: number; readonly hash: string }
  | { readonly _tag: "unsealed" }
  | { readonly _tag: "unopenable"; readonly message: string }
  | { readonly _tag: "unchecked" }

/** What is sealed for an org's head: `canonicalJson` of `{org, seq, hash}`. Never change these bytes. */
export const sealedHeadText = (org: string, head: { readonly seq: number; readonly hash: string }): string =>
  canonicalJson({ org, seq: head.seq, hash: head.hash })

/** Decodes an opened sealed head (`sealedHeadText`). */
export const SealedHead = Schema.fromJsonString(
  Schema.Struct({ org: Schema.String, seq: Schema.Int, hash: Schema.String })
)

/** How the head's seal was checked: see `HeadSeal`; "none" when there is no head or the store does not seal. */
export const HeadSealStatus = Schema.Literals(["verified", "unsealed", "unchecked", "forged", "none"])
export type HeadSealStatus = typeof HeadSealStatus.Type

/**
 * The canonical encoding hashed: `Canonical.canonicalJson` of `{seq, prev_hash, record}` (keys sorted at every
 * level, no whitespace, absent keys left out). Stored chains depend on these bytes: never change them.
 */
export const canonical = (seq: number, prevHash: string, record: AuditRecord): string =>
  canonicalJson({ seq, prev_hash: prevHash, record })

export const Problem = Schema.Struct({
  seq: Schema.NullOr(Schema.Int),
  id: Schema.NullOr(Schema.String),
  problem: Schema.Literals(["edited", "unreadable", "missing", "reordered", "broken_link", "truncated", "head_forged"]),
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
  /**
   * The head's seal: "verified" (opened with the master key, equal to the plain head), "unsealed" (a database
   * from before heads were sealed: the chain is checked without it; the store seals it on opening), "unchecked"
   * (verified without the master key), "forged" (see the `head_forged` problem), "none".
   */
  head_seal: HeadSealStatus,
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
  const head_seal = head === undefined ? "none" : checkSeal(org, head, prevSeq, prevHash, problems)
  return {
    org,
    ok: problems.length === 0,
    records: links.length,
    unchained,
    head: head === undefined ? null : { seq: head.seq, hash: head.hash },
    head_seal,
    problems
  }
}

/**
 * Checks the sealed head against the plain head and, when they differ, against the last link (`lastSeq`,
 * `lastHash`): a chain that ends before the sealed head was cut, else it was rewritten. Adds the problem found.
 */
const checkSeal = (
  org: string,
  head: Head,
  lastSeq: number,
  lastHash: string,
  problems: Array<Problem>
): HeadSealStatus => {
  const seal = head.seal
  if (seal === undefined) return "none"
  switch (seal._tag) {
    case "unsealed":
    case "unchecked":
      return seal._tag
    case "unopenable":
      problems.push({
        seq: head.seq,
        id: null,
        problem: "head_forged",
        message: `the chain's sealed head does not open with the master key (${seal.message}): it was forged or damaged`
      })
      return "forged"
    case "opened":
      if (seal.org !== org) {
        problems.push({
          seq: head.seq,
          id: null,
          problem: "head_forged",
          message: `the chain's sealed head belongs to organization ${seal.org}`
        })
        return "forged"
      }
      // The seal is genuine and is the plain head: any difference from the last link is reported already.
      if (seal.seq === head.seq && seal.hash === head.hash) return "verified"
      problems.push({
        seq: seal.seq,
        id: null,
        ...(seal.seq > lastSeq
          ? {
              problem: "truncated" as const,
              message: `the sealed head says the chain ends at record ${seal.seq}, it ends at ${lastSeq}: records were removed from the end`
            }
          : {
              problem: "head_forged" as const,
              message:
                `the sealed head (record ${seal.seq}, ${seal.hash.slice(0, 12)}…) does not match the chain ` +
                `(record ${lastSeq}, ${lastHash.slice(0, 12)}…): records were rewritten by someone without the master key`
            })
      })
      return "forged"
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
