/**
 * `switchboard audit verify` and `switchboard audit export --jsonl` on a real data directory: records written
 * through the SQLite store, then the file edited by hand with raw SQL (the adapter tests use better-sqlite3
 * itself); verify reports it and exits 10. Also the attacker without the master key who rewrites a record and
 * recomputes every later hash and the plain head with node:crypto: the sealed head (opened with the data
 * directory's key) gives it away.
 */
import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import * as Sqlite from "@switchboard/adapters/sqlite"
import * as AuditChain from "@switchboard/core/AuditChain"
import { AuditLog, type AuditRecord } from "@switchboard/core/AuditLog"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stdio from "effect/Stdio"
import * as Stream from "effect/Stream"
import { TestConsole } from "effect/testing"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import { afterAll } from "vitest"
import { Access } from "../../src/cli/Access.ts"
import { brokenChainExitCode } from "../../src/cli/BeyondCommands.ts"
import * as Main from "../../src/cli/Main.ts"
import * as Layers from "../../src/Layers.ts"
import { tempDir } from "../support.ts"

const home = tempDir("sba-")
afterAll(() => Fs.rmSync(home, { recursive: true, force: true }))

const record = (i: number): AuditRecord => ({
  id: `aud_${String(i).padStart(6, "0")}`,
  at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
  org: "local",
  workspace: "default",
  actor: "me",
  action: "connector.create",
  outcome: "success",
  target: `t${i}`
})

const unused: Layer.Layer<Switchboard.Switchboard> = Layer.effect(
  Switchboard.Switchboard,
  Effect.die("the audit commands read the database file, not the Switchboard")
)
const access = Layer.succeed(Access, Access.of({ layer: () => unused }))

const rewriteHome = tempDir("sbr-")
afterAll(() => Fs.rmSync(rewriteHome, { recursive: true, force: true }))

const cli = (argv: ReadonlyArray<string>) => cliIn(home, argv)

const cliIn = (home: string, argv: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const before = (yield* TestConsole.logLines).length
    const code = yield* Main.run(["--home", home, ...argv]).pipe(
      Effect.provide(access),
      Effect.provide(Layer.mergeAll(NodeServices.layer, Stdio.layerTest({ stdin: Stream.empty })))
    )
    const exit = process.exitCode
    process.exitCode = undefined
    const out = (yield* TestConsole.logLines).slice(before).join("\n")
    return { code: code === 0 && typeof exit === "number" ? exit : code, out }
  })

describe("switchboard audit verify | export", () => {
  it.effect("an untouched log verifies and exports in chain order; a hand edit is reported with exit 10", () =>
    Effect.gen(function* () {
      const empty = yield* cli(["audit", "verify"])
      assert.strictEqual(empty.code, 0)
      assert.match(empty.out, /no audit records/)

      const database = Layers.resolvePaths({ home }).database
      // The data directory's own key (`<home>/master.key`), which the CLI opens the sealed heads with.
      const sealer = Layers.sealerLayer(Layers.resolvePaths({ home }))
      yield* Effect.gen(function* () {
        const log = yield* AuditLog
        for (let i = 1; i <= 4; i++) yield* log.append(record(i))
      }).pipe(Effect.provide(Sqlite.layer({ filename: database }).pipe(Layer.provide(sealer))))

      const ok = yield* cli(["audit", "verify"])
      assert.strictEqual(ok.code, 0, ok.out)
      assert.match(ok.out, /local: 4 records, head 4 [0-9a-f]{12}…: chain intact/)

      const exported = yield* cli(["audit", "export", "--jsonl"])
      const lines = exported.out
        .split("\n")
        .map((l) => JSON.parse(l) as { seq: number; prev_hash: string; hash: string; record: AuditRecord })
      assert.deepStrictEqual(
        lines.map((l) => l.seq),
        [1, 2, 3, 4]
      )
      assert.strictEqual(lines[2]?.prev_hash, lines[1]?.hash)
      assert.strictEqual(lines[0]?.record.target, "t1")

      yield* Effect.gen(function* () {
        const db = yield* Sqlite.Database.SqliteDatabase
        const row = yield* db.get<{ record: string }>("SELECT record FROM audit WHERE seq = 2")
        yield* db.run("UPDATE audit SET record = ? WHERE seq = 2", [row?.record.replace('"t2"', '"t9"') ?? ""])
        yield* db.run("DELETE FROM audit WHERE seq = 3")
      }).pipe(Effect.provide(Sqlite.Database.layer({ filename: database })))
      const broken = yield* cli(["audit", "verify"])
      assert.strictEqual(broken.code, brokenChainExitCode)
      assert.match(broken.out, /TAMPERED/)
      assert.match(broken.out, /edited\s+record 2/)
      assert.match(broken.out, /missing\s+record\(s\) 3…3/)
      const json = yield* cli(["--json", "audit", "verify"])
      assert.strictEqual(JSON.parse(json.out).ok, false)
    }).pipe(Effect.provide(TestConsole.layer))
  )

  it.effect("a rewrite with every later hash and the plain head recomputed (no key) is reported, exit 10", () =>
    Effect.gen(function* () {
      const paths = Layers.resolvePaths({ home: rewriteHome })
      yield* Effect.gen(function* () {
        const log = yield* AuditLog
        for (let i = 1; i <= 4; i++) yield* log.append(record(i))
      }).pipe(Effect.provide(Sqlite.layer({ filename: paths.database }).pipe(Layer.provide(Layers.sealerLayer(paths)))))
      const ok = yield* cliIn(rewriteHome, ["--json", "audit", "verify"])
      assert.strictEqual(ok.code, 0, ok.out)
      assert.strictEqual(JSON.parse(ok.out).data[0].head_seal, "verified")

      // The attacker: the database file and node:crypto, not the key.
      yield* Effect.gen(function* () {
        const db = yield* Sqlite.Database.SqliteDatabase
        const rows = yield* db.all<{ seq: number; prev_hash: string; record: string }>(
          "SELECT seq, prev_hash, record FROM audit WHERE seq >= 2 ORDER BY seq"
        )
        let prev = rows[0]?.prev_hash ?? AuditChain.genesis
        for (const row of rows) {
          const text = row.seq === 2 ? row.record.replace('"t2"', '"t9"') : row.record
          const hash = Crypto.createHash("sha256")
            .update(AuditChain.canonical(row.seq, prev, JSON.parse(text)))
            .digest("hex")
          yield* db.run("UPDATE audit SET record = ?, prev_hash = ?, hash = ? WHERE seq = ?", [
            text,
            prev,
            hash,
            row.seq
          ])
          yield* db.run("UPDATE audit_heads SET seq = ?, hash = ?", [row.seq, hash])
          prev = hash
        }
      }).pipe(Effect.provide(Sqlite.Database.layer({ filename: paths.database })))
      const forged = yield* cliIn(rewriteHome, ["audit", "verify"])
      assert.strictEqual(forged.code, brokenChainExitCode, forged.out)
      assert.match(forged.out, /TAMPERED/)
      assert.match(forged.out, /head_forged\s+the sealed head \(record 4/)
    }).pipe(Effect.provide(TestConsole.layer))
  )
})
