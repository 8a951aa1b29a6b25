/**
 * The `AuditChain` port on the SQLite file: the chained audit records of an organization in sequence order and
 * its stored head. Reads only the `audit` and `audit_heads` tables, which hold nothing sealed, so verifying and
 * exporting need no master key. Records are chained by `Store`'s `AuditLog.append`.
 */
import * as AuditChain from "@switchboard/core/AuditChain"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { sha256 } from "../internal/digest.ts"
import { chainOf, type LinkRow } from "../internal/rows.ts"
import { SqliteDatabase } from "./Database.ts"

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
          return chainOf(rows, head, legacy?.n ?? 0)
        })
      ),
    digest: sha256
  })
)

/** The chain reader on an open `SqliteDatabase`. */
export const layer = Layer.effect(AuditChain.AuditChain, make)
