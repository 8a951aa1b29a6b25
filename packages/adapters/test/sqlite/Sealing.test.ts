/**
 * What the SQLite store does with secrets: nothing secret reaches the file in clear, a sealed value moved to
 * another row does not open, a wrong master key is refused at open without touching the files, and key
 * rotation re-seals everything in one transaction or nothing at all.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { ConnectionStore } from "@switchboard/core/ConnectionStore"
import { ConnectorStore } from "@switchboard/core/ConnectorStore"
import type { Credential } from "@switchboard/core/Credential"
import { CredentialVault, type Key } from "@switchboard/core/CredentialVault"
import { SealError } from "@switchboard/core/Errors"
import type { Sealer as SealerPort } from "@switchboard/core/Sealer"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Sqlite from "../../src/sqlite/index.ts"
import { makeConnection, makeConnector, makeCredential, makeSecrets, ORG, reveal, testId } from "../StoreSuite.ts"
import { dbFiles, keyA, keyB, makeSealer, snapshot, storeLayer, tempDir, withRaw } from "./support.ts"

const dir = tempDir("sealing")
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))
let files = 0
const freshFile = () => Path.join(dir, `db-${++files}.db`)

const CANARY = "sb-canary-5d1f0c7e"

const keyOf = (credential: Credential): Key => ({
  connectorId: credential.connector_id,
  scope: credential.scope,
  owner: credential.owner,
  name: credential.name
})

/** A connector with three credentials and two connections, every secret holding `marker`. */
const seed = (marker: string) =>
  Effect.gen(function* () {
    const store = yield* ConnectorStore
    const vault = yield* CredentialVault
    const connections = yield* ConnectionStore
    const connector = makeConnector(1)
    yield* store.insert(ORG, connector)
    const credentials = [
      makeCredential(1, connector.id, { values: { token: Redacted.make(`${marker}-token`) } }),
      makeCredential(2, connector.id, {
        name: "backup",
        values: { token: Redacted.make(`${marker}-backup`), region: Redacted.make("eu") }
      }),
      makeCredential(3, connector.id, {
        scope: "user",
        owner: { org: ORG, user: "alice" },
        values: { token: Redacted.make(`${marker}-user`) }
      })
    ]
    for (const credential of credentials) yield* vault.put(credential)
    const rows = [makeConnection(1, connector.id), makeConnection(2, connector.id, { name: "Second" })]
    yield* connections.insert(rows[0] as (typeof rows)[number], {
      security: { password: Redacted.make(`${marker}-security`) },
      headers: { "x-api-secret": Redacted.make(`${marker}-header`) }
    })
    yield* connections.insert(rows[1] as (typeof rows)[number], makeSecrets(`${marker}-second`))
    return { connector, credentials, connections: rows }
  })

/** Reads every secret back and checks it holds `marker`. */
const readAll = (marker: string) =>
  Effect.gen(function* () {
    const vault = yield* CredentialVault
    const connections = yield* ConnectionStore
    const one = yield* vault.get({
      connectorId: testId("ctr", 1),
      scope: "organization",
      owner: { org: ORG },
      name: "default"
    })
    assert.deepStrictEqual(reveal(Option.getOrThrow(one).values), { token: `${marker}-token` })
    const listed = yield* vault.list(testId("ctr", 1), "organization", { org: ORG })
    assert.deepStrictEqual(
      listed.map((c) => reveal(c.values)),
      [{ token: `${marker}-backup`, region: "eu" }, { token: `${marker}-token` }]
    )
    const user = yield* vault.get({
      connectorId: testId("ctr", 1),
      scope: "user",
      owner: { org: ORG, user: "alice" },
      name: "default"
    })
    assert.deepStrictEqual(reveal(Option.getOrThrow(user).values), { token: `${marker}-user` })
    const secrets = yield* connections.secrets(ORG, testId("conn", 1))
    assert.deepStrictEqual(reveal(secrets.security), { password: `${marker}-security` })
    assert.deepStrictEqual(reveal(secrets.headers), { "x-api-secret": `${marker}-header` })
    const second = yield* connections.secrets(ORG, testId("conn", 2))
    assert.deepStrictEqual(reveal(second.security), { token: `${marker}-second` })
  })

const expectSealError =
  (reason: SealError["reason"]) =>
  (error: unknown): SealError => {
    if (!(error instanceof SealError)) return assert.fail(`expected a SealError, got ${JSON.stringify(error)}`)
    assert.strictEqual(error.reason, reason)
    return error
  }

const openFails = (filename: string, key: Uint8Array) =>
  Effect.flip(Effect.scoped(Layer.build(storeLayer(filename, key))))

describe("sqlite sealing", () => {
  it.effect("no secret reaches the database file or its WAL in clear", () =>
    Effect.gen(function* () {
      const filename = freshFile()
      const spellings = [Buffer.from(CANARY, "utf8"), Buffer.from(CANARY, "utf16le")]
      const containsCanary = () =>
        dbFiles(filename)
          .filter((path) => Fs.existsSync(path))
          .filter((path) => {
            const bytes = Fs.readFileSync(path)
            return spellings.some((spelling) => bytes.includes(spelling))
          })
      yield* Effect.gen(function* () {
        yield* seed(CANARY)
        // The same secret replaced and a credential deleted: old versions must not linger in clear either.
        const vault = yield* CredentialVault
        yield* vault.put(makeCredential(9, testId("ctr", 1), { values: { token: Redacted.make(`${CANARY}-again`) } }))
        yield* vault.delete({
          connectorId: testId("ctr", 1),
          scope: "organization",
          owner: { org: ORG },
          name: "backup"
        })
        assert.isTrue(Fs.existsSync(`${filename}-wal`))
        assert.deepStrictEqual(containsCanary(), [])
        // The check is not vacuous: what we wrote really is in the files (sealed).
        assert.isAbove(Fs.statSync(`${filename}-wal`).size, 0)
      }).pipe(Effect.provide(storeLayer(filename, keyA)))
      // After close the WAL is checkpointed into the database file.
      assert.deepStrictEqual(containsCanary(), [])
      const rows = withRaw(
        filename,
        (db) => db.prepare("SELECT record FROM connections").all() as Array<{ record: string }>
      )
      for (const row of rows) {
        const record = JSON.parse(row.record) as Record<string, unknown>
        assert.deepStrictEqual(
          Object.keys(record).filter((key) => key === "security" || key === "headers"),
          []
        )
        assert.notInclude(row.record, CANARY)
      }
    })
  )

  it.effect("a sealed value copied into another row does not open", () =>
    Effect.gen(function* () {
      const filename = freshFile()
      yield* Effect.gen(function* () {
        const { credentials } = yield* seed("moved")
        const vault = yield* CredentialVault
        const connections = yield* ConnectionStore
        const [first, second] = credentials as [Credential, Credential, Credential]
        const copy = (sql: string, ...params: Array<string>) =>
          withRaw(filename, (db) => db.prepare(sql).run(...params))
        // Credential → credential.
        copy(
          "UPDATE credentials SET key_id = s.key_id, sealed = s.sealed FROM (SELECT key_id, sealed FROM credentials WHERE id = ?) s WHERE id = ?",
          first.id,
          second.id
        )
        expectSealError("open_failed")(yield* Effect.flip(vault.get(keyOf(second))))
        expectSealError("open_failed")(
          yield* Effect.flip(vault.list(second.connector_id, "organization", { org: ORG }))
        )
        // Connection → connection, credential → connection, and the check value → credential.
        copy(
          "UPDATE connections SET key_id = s.key_id, sealed = s.sealed FROM (SELECT key_id, sealed FROM connections WHERE id = ?) s WHERE id = ?",
          testId("conn", 1),
          testId("conn", 2)
        )
        expectSealError("open_failed")(yield* Effect.flip(connections.secrets(ORG, testId("conn", 2))))
        copy(
          "UPDATE connections SET key_id = s.key_id, sealed = s.sealed FROM (SELECT key_id, sealed FROM credentials WHERE id = ?) s WHERE id = ?",
          first.id,
          testId("conn", 1)
        )
        expectSealError("open_failed")(yield* Effect.flip(connections.secrets(ORG, testId("conn", 1))))
        const third = credentials[2] as Credential
        copy(
          "UPDATE credentials SET key_id = s.key_id, sealed = s.sealed FROM (SELECT key_id, sealed FROM meta WHERE key = 'key_check') s WHERE id = ?",
          third.id
        )
        expectSealError("open_failed")(yield* Effect.flip(vault.get(keyOf(third))))
        // The source of the copies still opens where it belongs; one flipped bit and it does not.
        const source = yield* vault.get(keyOf(first))
        assert.deepStrictEqual(reveal(Option.getOrThrow(source).values), { token: "moved-token" })
        withRaw(filename, (db) => {
          const row = db.prepare("SELECT sealed FROM credentials WHERE id = ?").get(first.id) as { sealed: Buffer }
          const last = row.sealed.length - 1
          row.sealed.writeUInt8((row.sealed.readUInt8(last) ^ 1) & 0xff, last)
          db.prepare("UPDATE credentials SET sealed = ? WHERE id = ?").run(row.sealed, first.id)
        })
        expectSealError("open_failed")(yield* Effect.flip(vault.get(keyOf(first))))
      }).pipe(Effect.provide(storeLayer(filename, keyA)))
    })
  )

  it.effect("a wrong key is refused at open with key_mismatch, leaving the files as they were", () =>
    Effect.gen(function* () {
      const filename = freshFile()
      yield* seed("keyed").pipe(Effect.provide(storeLayer(filename, keyA)))
      const before = snapshot(dbFiles(filename))
      assert.isTrue(before[filename]?.exists)
      const error = expectSealError("key_mismatch")(yield* openFails(filename, keyB))
      assert.match(error.message, /^the master key does not match this database/)
      assert.deepStrictEqual(snapshot(dbFiles(filename)), before)

      // While another connection holds unsaved frames in the WAL, a wrong key changes neither file either.
      yield* Effect.gen(function* () {
        const vault = yield* CredentialVault
        yield* vault.put(
          makeCredential(7, testId("ctr", 1), {
            scope: "user",
            owner: { org: ORG, user: "bob" },
            values: { token: Redacted.make("late") }
          })
        )
        const live = snapshot(dbFiles(filename))
        assert.isTrue(live[`${filename}-wal`]?.exists)
        assert.isAbove(live[`${filename}-wal`]?.size ?? 0, 0)
        expectSealError("key_mismatch")(yield* openFails(filename, keyB))
        assert.deepStrictEqual(snapshot(dbFiles(filename)), live)
      }).pipe(Effect.provide(storeLayer(filename, keyA)))

      // The right key still opens everything.
      yield* readAll("keyed").pipe(Effect.provide(storeLayer(filename, keyA)))
    })
  )

  it.effect("a new database gets a check value that later opens prove the key with", () =>
    Effect.gen(function* () {
      const filename = freshFile()
      yield* Effect.void.pipe(Effect.provide(storeLayer(filename, keyA)))
      const sealer = yield* makeSealer(keyA)
      const rows = withRaw(filename, (db) => db.prepare("SELECT key, key_id FROM meta").all())
      assert.deepStrictEqual(rows, [{ key: "key_check", key_id: sealer.keyId }])
      // An empty database is bound to its key too.
      expectSealError("key_mismatch")(yield* openFails(filename, keyB))
    })
  )

  describe("rotateKey", () => {
    const rotate = (next: typeof SealerPort.Service) =>
      Effect.gen(function* () {
        const db = yield* Sqlite.Database.SqliteDatabase
        const current = yield* makeSealer(keyA)
        return yield* Sqlite.rotateKey(db, current, next)
      })

    /** A sealer that behaves like `inner` until its nth seal, which runs `onNth` instead. */
    const failingAt = (
      inner: typeof SealerPort.Service,
      nth: number,
      onNth: Effect.Effect<never, SealError>
    ): typeof SealerPort.Service => {
      let seals = 0
      return {
        keyId: inner.keyId,
        open: inner.open,
        seal: (plaintext, context) => (++seals === nth ? onNth : inner.seal(plaintext, context))
      }
    }

    it.effect("re-seals every value and the check value under the new key", () =>
      Effect.gen(function* () {
        const filename = freshFile()
        const next = yield* makeSealer(keyB)
        const counts = yield* Effect.gen(function* () {
          yield* seed("rotated")
          return yield* rotate(next)
        }).pipe(Effect.provide(storeLayer(filename, keyA)))
        assert.deepStrictEqual(counts, {
          credentials: 3,
          connections: 2,
          oauth_flows: 0,
          oauth_records: 0,
          keyId: next.keyId
        })
        expectSealError("key_mismatch")(yield* openFails(filename, keyA))
        yield* readAll("rotated").pipe(Effect.provide(storeLayer(filename, keyB)))
        const keyIds = withRaw(filename, (db) =>
          db
            .prepare(
              "SELECT key_id FROM credentials UNION SELECT key_id FROM connections UNION SELECT key_id FROM meta"
            )
            .all()
        )
        assert.deepStrictEqual(keyIds, [{ key_id: next.keyId }])
      })
    )

    it.effect("rolls back entirely when sealing fails midway; the old key still opens everything", () =>
      Effect.gen(function* () {
        const filename = freshFile()
        const next = yield* makeSealer(keyB)
        const broken = failingAt(
          next,
          4,
          Effect.fail(new SealError({ reason: "seal_failed", message: "injected failure" }))
        )
        yield* Effect.gen(function* () {
          yield* seed("kept")
          const error = yield* Effect.flip(rotate(broken))
          assert.strictEqual(error.message, "injected failure")
          // The running store (old key) still reads everything.
          yield* readAll("kept")
        }).pipe(Effect.provide(storeLayer(filename, keyA)))
        expectSealError("key_mismatch")(yield* openFails(filename, keyB))
        yield* readAll("kept").pipe(Effect.provide(storeLayer(filename, keyA)))
      })
    )

    it.effect("rolls back when interrupted midway", () =>
      Effect.gen(function* () {
        const filename = freshFile()
        const next = yield* makeSealer(keyB)
        const reached = yield* Deferred.make<void>()
        const stuck = failingAt(next, 3, Effect.andThen(Deferred.succeed(reached, undefined), Effect.never))
        yield* Effect.gen(function* () {
          yield* seed("interrupted")
          const fiber = yield* Effect.forkChild(rotate(stuck))
          yield* Deferred.await(reached)
          yield* Fiber.interrupt(fiber)
          yield* readAll("interrupted")
          // The connection is usable again: the transaction was rolled back, not left open.
          const vault = yield* CredentialVault
          yield* vault.put(
            makeCredential(8, testId("ctr", 1), {
              scope: "user",
              owner: { org: ORG, user: "bob" },
              values: { token: Redacted.make("x") }
            })
          )
        }).pipe(Effect.provide(storeLayer(filename, keyA)))
        yield* readAll("interrupted").pipe(Effect.provide(storeLayer(filename, keyA)))
      })
    )

    it.effect("a store still on the old key refuses to write after another process rotated", () =>
      Effect.gen(function* () {
        const filename = freshFile()
        const next = yield* makeSealer(keyB)
        yield* Effect.gen(function* () {
          const { credentials, connector } = yield* seed("stale")
          const vault = yield* CredentialVault
          const connections = yield* ConnectionStore
          // Another connection (as another process would) rotates the key under this store.
          yield* rotate(next).pipe(Effect.provide(storeLayer(filename, keyA)))
          const stale = makeCredential(20, connector.id, { name: "stale", values: { token: Redacted.make("x") } })
          expectSealError("key_mismatch")(yield* Effect.flip(vault.put(stale)))
          expectSealError("key_mismatch")(
            yield* Effect.flip(
              connections.insert(makeConnection(20, connector.id, { name: "Stale" }), makeSecrets("x"))
            )
          )
          expectSealError("key_mismatch")(yield* Effect.flip(vault.get(keyOf(credentials[0] as Credential))))
        }).pipe(Effect.provide(storeLayer(filename, keyA)))
        // Nothing was written under the old key: the new key opens everything there is.
        yield* readAll("stale").pipe(Effect.provide(storeLayer(filename, keyB)))
        assert.deepStrictEqual(
          withRaw(filename, (db) => db.prepare("SELECT count(*) AS n FROM connections").get()),
          { n: 2 }
        )
      })
    )

    it.effect("refuses to rotate from a key that is not the database's", () =>
      Effect.gen(function* () {
        const filename = freshFile()
        const wrong = yield* makeSealer(keyB)
        yield* Effect.gen(function* () {
          yield* seed("guarded")
          const db = yield* Sqlite.Database.SqliteDatabase
          expectSealError("key_mismatch")(yield* Effect.flip(Sqlite.rotateKey(db, wrong, wrong)))
          yield* readAll("guarded")
        }).pipe(Effect.provide(storeLayer(filename, keyA)))
      })
    )
  })
})
