/**
 * The SQLite vault keeps a credential's opened values briefly, with the sealed bytes they came from. A read
 * never serves stale values: a change through this store, a change through another store on the same file (as
 * another process would make), a deletion, or bytes replaced by hand are all seen by the very next read.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConnectorStore } from "@switchboard/core/ConnectorStore"
import { CredentialVault } from "@switchboard/core/CredentialVault"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll } from "vitest"
import { makeConnector, makeCredential, ORG } from "../StoreSuite.ts"
import { keyA, storeLayer, tempDir, withRaw } from "./support.ts"

const dir = tempDir("credential-cache")
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

const key = (connectorId: string) => ({
  connectorId,
  scope: "organization" as const,
  owner: { org: ORG },
  name: "default"
})

const tokenOf = (credential: Option.Option<{ readonly values: Readonly<Record<string, Redacted.Redacted<string>>> }>) =>
  Option.match(credential, {
    onNone: () => undefined,
    onSome: (c) => (c.values.token === undefined ? undefined : Redacted.value(c.values.token))
  })

describe("sqlite credential reads", () => {
  it.effect("see a change made through this store, through another store on the file, and a deletion", () =>
    Effect.gen(function* () {
      const filename = Path.join(dir, "changes.db")
      const connector = makeConnector(1)
      const other = yield* Layer.build(storeLayer(filename, keyA))
      const otherVault = Context.get(other, CredentialVault)
      yield* Effect.gen(function* () {
        const connectors = yield* ConnectorStore
        const vault = yield* CredentialVault
        yield* connectors.insert(ORG, connector)
        yield* vault.put(makeCredential(1, connector.id, { values: { token: Redacted.make("first") } }))
        // Read twice: the second read may be served from what the first opened.
        assert.strictEqual(tokenOf(yield* vault.get(key(connector.id))), "first")
        assert.strictEqual(tokenOf(yield* vault.get(key(connector.id))), "first")

        yield* vault.put(makeCredential(1, connector.id, { values: { token: Redacted.make("second") } }))
        assert.strictEqual(tokenOf(yield* vault.get(key(connector.id))), "second")

        // Another store on the same file, as another process: its change is seen here at once.
        yield* otherVault.put(makeCredential(1, connector.id, { values: { token: Redacted.make("third") } }))
        assert.strictEqual(tokenOf(yield* vault.get(key(connector.id))), "third")

        yield* otherVault.delete(key(connector.id))
        assert.isTrue(Option.isNone(yield* vault.get(key(connector.id))))
      }).pipe(Effect.provide(storeLayer(filename, keyA)))
    }).pipe(Effect.scoped)
  )

  it.effect("sealed bytes replaced by hand are opened again (and refused), not served from before", () =>
    Effect.gen(function* () {
      const filename = Path.join(dir, "tampered.db")
      const first = makeConnector(1)
      const second = makeConnector(2, { name: "second" })
      yield* Effect.gen(function* () {
        const connectors = yield* ConnectorStore
        const vault = yield* CredentialVault
        yield* connectors.insert(ORG, first)
        yield* connectors.insert(ORG, second)
        yield* vault.put(makeCredential(1, first.id, { values: { token: Redacted.make("one") } }))
        yield* vault.put(makeCredential(2, second.id, { values: { token: Redacted.make("two") } }))
        assert.strictEqual(tokenOf(yield* vault.get(key(first.id))), "one")
        // Another row's ciphertext copied into this row: it belongs to another row, so it must not open.
        withRaw(filename, (db) =>
          db
            .prepare(
              "UPDATE credentials SET sealed = (SELECT sealed FROM credentials WHERE connector_id = ?) WHERE connector_id = ?"
            )
            .run(second.id, first.id)
        )
        const error = yield* Effect.flip(vault.get(key(first.id)))
        assert.strictEqual(error._tag, "SealError")
      }).pipe(Effect.provide(storeLayer(filename, keyA)))
    })
  )
})
