/**
 * One of two processes racing to refresh one expired token on a shared sealed SQLite store:
 * `node refreshRacer.ts FILE CONNECTION COUNT GO_FILE MODE`. It opens the OAuth stack as the daemon wires it, says
 * "ready", waits until GO_FILE exists, then makes COUNT concurrent refresh checks (`beforeCall`) on the connection
 * and prints the access tokens it ended with (as digests) as one JSON line. MODE `lease` is the real stack;
 * `no-lease` wraps the `OAuthStateStore` so that `acquireLease` always succeeds (the cross-process lease is gone,
 * nothing else changes): the negative control of the single-flight test.
 */
import * as HttpAdapter from "@switchboard/adapters/http"
import * as OAuthAdapter from "@switchboard/adapters/oauth"
import * as Sodium from "@switchboard/adapters/sodium"
import * as Sqlite from "@switchboard/adapters/sqlite"
import * as OAuth from "@switchboard/core/OAuth"
import { OAuthStateStore } from "@switchboard/core/OAuthStateStore"
import { Sealer } from "@switchboard/core/Sealer"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import { testKey } from "../../support/oauth/Stack.ts"

const [filename = "", connection = "", count = "10", goFile = "", mode = "lease"] = process.argv.slice(2)

/** The state store with the cross-process lease switched off: every process thinks it holds it. */
const withoutLease = Layer.effect(
  OAuthStateStore,
  Effect.gen(function* () {
    const store = yield* OAuthStateStore
    return OAuthStateStore.of({ ...store, acquireLease: () => Effect.succeed(true) })
  })
).pipe(Layer.provide(OAuthAdapter.StateStore.layerSqlite))

const sealer = Layer.effect(Sealer, Sodium.Sealer.make).pipe(Layer.provide(Sodium.KeyProvider.layerMemory(testKey)))
const database = Sqlite.Database.layer({ filename, schemaVersion: Sqlite.Migrations.latestVersion })
const stores = Layer.mergeAll(
  Sqlite.Store.layerFromDatabase(),
  mode === "no-lease" ? withoutLease : OAuthAdapter.StateStore.layerSqlite
).pipe(Layer.provide(Layer.merge(database, sealer)))
const base = Switchboard.layer.pipe(Layer.provideMerge(stores))
const client = OAuthAdapter.Client.layer().pipe(Layer.provide(HttpAdapter.Resolver.layer))
const stack = OAuth.layer({}).pipe(Layer.provide(client), Layer.provideMerge(base))

const program = Effect.gen(function* () {
  const sb = yield* Switchboard.Switchboard
  const oauth = yield* OAuth.OAuth
  process.stdout.write("ready\n")
  while (!Fs.existsSync(goFile)) yield* Effect.sleep("5 millis")
  const calls = yield* Effect.forEach(
    Array.from({ length: Number(count) }),
    () => Effect.flatMap(sb.resolveCall(connection), (call) => oauth.refresher.beforeCall(call)),
    { concurrency: "unbounded" }
  )
  const digests = new Set(
    calls.map((call) =>
      createHash("sha256")
        .update(Redacted.value(call.values["access_token"] ?? Redacted.make("")))
        .digest("hex")
    )
  )
  process.stdout.write(`${JSON.stringify({ tokens: [...digests] })}\n`)
})

Effect.runPromise(Effect.scoped(program.pipe(Effect.provide(stack)))).catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`)
  process.exitCode = 1
})
