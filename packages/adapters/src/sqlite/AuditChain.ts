/**
 * The `AuditChain` port on the SQLite file: the chained audit records of an organization in sequence order and
 * its stored head. Reads only the `audit` and `audit_heads` tables. The head's sealed copy (migration 6) is opened
 * with the `Sealer` when one is in context (then a chain rewritten without the master key is caught); without one
 * it is reported "unchecked", and exporting needs no key. Records are chained by `Store`'s `AuditLog.append`.
 */
import * as AuditChain from "@switchboard/core/AuditChain"
import { Sealer } from "@switchboard/core/Sealer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { sha256 } from "../internal/digest.ts"
import { chainOf, type LinkRow, type SealedColumns } from "../internal/rows.ts"
import { type HeadRow, openHead } from "../internal/store.ts"
import { checkValueContext, verifyCheckValue } from "../sodium/Sealer.ts"
import { SqliteDatabase } from "./Database.ts"

export const make = Effect.gen(function* () {
  const db = yield* SqliteDatabase
  const sealer = Option.getOrUndefined(yield* Effect.serviceOption(Sealer))
  if (sealer !== undefined) {
    // A wrong key is said as such, not reported as every head forged.
    const check = yield* db.locked(
      db.get<SealedColumns>("SELECT key_id, sealed FROM meta WHERE key = ?", [checkValueContext.rowId])
    )
    if (check !== undefined) yield* verifyCheckValue(sealer, { keyId: check.key_id, bytes: check.sealed })
  }
  return AuditChain.AuditChain.of({
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
      db
        .locked(
          Effect.gen(function* () {
            const rows = yield* db.all<LinkRow>(
              "SELECT id, record, seq, prev_hash, hash FROM audit WHERE org = ? AND seq IS NOT NULL ORDER BY seq",
              [org]
            )
            // A database not migrated to 6 yet (read as it is: verifying does not migrate) has no sealed heads.
            const sealable = yield* db.get<{ readonly n: number }>(
              "SELECT count(*) AS n FROM pragma_table_info('audit_heads') WHERE name = 'sealed'"
            )
            const headRow = yield* db.get<HeadRow>(
              sealable?.n === 1
                ? "SELECT seq, hash, key_id, sealed FROM audit_heads WHERE org = ?"
                : "SELECT seq, hash, NULL AS key_id, NULL AS sealed FROM audit_heads WHERE org = ?",
              [org]
            )
            const legacy = yield* db.get<{ readonly n: number }>(
              "SELECT count(*) AS n FROM audit WHERE org = ? AND seq IS NULL",
              [org]
            )
            return { rows, headRow, sealable: sealable?.n === 1, unchained: legacy?.n ?? 0 }
          })
        )
        .pipe(
          // Opened outside the lock: the rows read are one snapshot already.
          Effect.flatMap(({ rows, headRow, sealable, unchained }) =>
            Effect.map(openHead(sealer, org, headRow, sealable), (head) => ({
              ...chainOf(rows, head, unchained),
              head
            }))
          )
        ),
    digest: sha256
  })
})

/** The chain reader on an open `SqliteDatabase`; with a `Sealer` in context it checks the sealed heads. */
export const layer = Layer.effect(AuditChain.AuditChain, make)
