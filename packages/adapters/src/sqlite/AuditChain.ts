/**
 * The `AuditChain` port on the SQLite file: the chained audit records of an organization in sequence order and
 * its stored head. Reads only the `audit` and `audit_heads` tables, which hold nothing sealed, so verifying and
 * exporting need no master key. Records are chained by `Store`'s `AuditLog.append`.
 */
import * as AuditChain from "@switchboard/core/AuditChain"
import * as AuditLog from "@switchboard/core/AuditLog"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { SqliteDatabase } from "./Database.ts"
import { sha256 } from "./Store.ts"

interface LinkRow {
  readonly id: string
  readonly record: string
  readonly seq: number
  readonly prev_hash: string
  readonly hash: string
}

const decodeRecord = Schema.decodeUnknownOption(Schema.fromJsonString(AuditLog.AuditRecord))

export const make = Effect.map(Effect.service(SqliteDatabase), (db) =>
  AuditChain.AuditChain.of({
    orgs: () =>
      Effect.map(
        db.locked(
          db.all<{ readonly org: string }>(
            "SELECT org FROM audit_heads UNION SELECT DISTINCT org FROM audit WHERE seq IS NOT NULL ORDER BY org"
          )
        ),
        (rows) => rows.map((r) => r.org)
      ),
    links: (org) =>
      db.locked(
        Effect.gen(function* () {
          const rows = yield* db.all<LinkRow>(
            "SELECT id, record, seq, prev_hash, hash FROM audit WHERE org = ? AND seq IS NOT NULL ORDER BY seq",
            [org]
          )
          const head = yield* db.get<AuditChain.Head>("SELECT seq, hash FROM audit_heads WHERE org = ?", [org])
          const legacy = yield* db.get<{ readonly n: number }>(
            "SELECT count(*) AS n FROM audit WHERE org = ? AND seq IS NULL",
            [org]
          )
          const links = rows.map(
            (row): AuditChain.Link => ({
              seq: row.seq,
              prev_hash: row.prev_hash,
              hash: row.hash,
              id: row.id,
              record: Option.getOrUndefined(decodeRecord(row.record))
            })
          )
          return {
            links,
            head: head === undefined ? undefined : { seq: head.seq, hash: head.hash },
            unchained: legacy?.n ?? 0
          }
        })
      ),
    digest: sha256
  })
)

/** The chain reader on an open `SqliteDatabase`. */
export const layer = Layer.effect(AuditChain.AuditChain, make)
