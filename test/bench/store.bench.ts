/**
 * Benchmark of the sealed SQLite store (`node test/bench/store.bench.ts`, or every bench with `pnpm bench`):
 * - seal + open per second through the `Sealer` port (Effect) against raw libsodium AEAD, same key, same
 *   associated data, same run, and their ratio;
 * - credential resolve (`CredentialVault.get` = one indexed select + one unseal), p50 and p99;
 * - a page of 100 connectors at 10k and at 100k connectors (keyset pagination), p50 and the ratio 100k/10k,
 *   which stays near 1 because the page is an index search, O(log n), not a scan.
 * Never run by `pnpm test`; takes well under two minutes.
 */
import * as Sqlite from "@switchboard/adapters/sqlite"
import { KeyProvider, Sealer } from "@switchboard/adapters/sodium"
import type { Connector } from "@switchboard/core/Connector"
import { ConnectorStore } from "@switchboard/core/ConnectorStore"
import type { Credential } from "@switchboard/core/Credential"
import { CredentialVault, type Key } from "@switchboard/core/CredentialVault"
import { Sealer as SealerPort } from "@switchboard/core/Sealer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { createRequire } from "node:module"

const SEAL_ROUNDS = 20_000
const CREDENTIALS = 1_000
const RESOLVES = 3_000
const LIST_CALLS = 300
const SMALL = 10_000
const LARGE = 100_000
const ORG = "org_bench"
const AT = "2025-01-01T00:00:00.000Z"

/** The few libsodium calls the raw baseline makes. */
interface RawSodium {
  readonly ready: Promise<void>
  readonly randombytes_buf: (length: number) => Uint8Array
  readonly crypto_aead_xchacha20poly1305_ietf_encrypt: (
    message: Uint8Array,
    additionalData: Uint8Array,
    secretNonce: null,
    publicNonce: Uint8Array,
    key: Uint8Array
  ) => Uint8Array
  readonly crypto_aead_xchacha20poly1305_ietf_decrypt: (
    secretNonce: null,
    ciphertext: Uint8Array,
    additionalData: Uint8Array,
    publicNonce: Uint8Array,
    key: Uint8Array
  ) => Uint8Array
}

// The libsodium build the sodium adapter depends on, resolved from that package (the test package does not
// depend on libsodium itself).
const loadRawSodium = Effect.promise(async () => {
  const lib = createRequire(import.meta.resolve("@switchboard/adapters/sodium"))("libsodium-wrappers-sumo") as RawSodium
  await lib.ready
  return lib
})

const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
const id = (prefix: string, n: number) => {
  let out = ""
  let rest = n
  for (let i = 0; i < 26; i++) {
    out = alphabet[rest % 32] + out
    rest = Math.floor(rest / 32)
  }
  return `${prefix}_${out}`
}

// Ids are spread like real ones (time-sortable, inserted in random order), so pages land all over the index.
const shuffled = (n: number, seed: number): Array<number> => {
  const out = Array.from({ length: n }, (_, i) => i)
  let state = seed
  for (let i = n - 1; i > 0; i--) {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648
    const j = state % (i + 1)
    const swap = out[i] as number
    out[i] = out[j] as number
    out[j] = swap
  }
  return out
}

const connector = (n: number): Connector => ({
  id: id("ctr", n * 7919),
  name: `connector-${n}`,
  display_name: `Connector ${n}`,
  kind: n % 2 === 0 ? "http" : "mcp",
  proxy_url: "https://api.example.com/{{region}}/v1",
  auth_patterns: [
    {
      type: "BEARER",
      fields: [{ field_name: "token", input_type: "password", required: true }],
      account_fields: [{ field_name: "region" }]
    }
  ],
  metadata: { team: "platform" },
  visibility: "private",
  version: 1,
  created_at: AT,
  updated_at: AT
})

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN

const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const start = performance.now()
    yield* effect
    return performance.now() - start
  })

const ms = (value: number) => `${value.toFixed(3)} ms`
const perSecond = (count: number, elapsedMs: number) => Math.round((count * 1000) / elapsedMs)
const grouped = (value: number) => value.toLocaleString("en-US")

const program = Effect.gen(function* () {
  const began = performance.now()
  const key = new Uint8Array(32).map((_, i) => (i * 29 + 3) & 0xff)
  const sealer = yield* Sealer.make.pipe(Effect.provide(KeyProvider.layerMemory(key)))
  const lib = yield* loadRawSodium
  console.log(`store bench · node ${process.version} · ${Os.cpus().length} cpus`)

  // --- seal + open -------------------------------------------------------------------------------------------
  const plaintext = new TextEncoder().encode(JSON.stringify({ token: "ghp_0123456789abcdefghijklmnopqrstuvwxyz" }))
  const context = { table: "credentials", rowId: id("cred", 42) }
  const viaSealer = yield* timed(
    Effect.gen(function* () {
      for (let i = 0; i < SEAL_ROUNDS; i++) {
        const sealed = yield* sealer.seal(Redacted.make(plaintext), context)
        yield* sealer.open(sealed, context)
      }
    })
  )
  const viaRaw = yield* timed(
    Effect.sync(() => {
      const ad = Sealer.associatedData(context, sealer.keyId)
      for (let i = 0; i < SEAL_ROUNDS; i++) {
        const nonce = lib.randombytes_buf(24)
        const ciphertext = lib.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, null, nonce, key)
        lib.crypto_aead_xchacha20poly1305_ietf_decrypt(null, ciphertext, ad, nonce, key)
      }
    })
  )
  const sealerRate = perSecond(SEAL_ROUNDS, viaSealer)
  const rawRate = perSecond(SEAL_ROUNDS, viaRaw)
  console.log(
    `seal+open (${plaintext.length} B, ${grouped(SEAL_ROUNDS)} rounds): Sealer ${grouped(sealerRate)}/s · ` +
      `raw libsodium ${grouped(rawRate)}/s · Sealer/raw ${(sealerRate / rawRate).toFixed(2)}`
  )

  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sb-bench-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
  const stores = Sqlite.Store.layer({ filename: Path.join(dir, "bench.db") }).pipe(
    Layer.provide(Layer.succeed(SealerPort, sealer))
  )

  yield* Effect.gen(function* () {
    const connectors = yield* ConnectorStore
    const vault = yield* CredentialVault

    // --- credential resolve ----------------------------------------------------------------------------------
    const home = connector(0)
    yield* connectors.insert(ORG, home)
    const keys: Array<Key> = []
    for (let i = 0; i < CREDENTIALS; i++) {
      const credential: Credential = {
        id: id("cred", i),
        connector_id: home.id,
        scope: i % 3 === 0 ? "organization" : "user",
        owner: i % 3 === 0 ? { org: ORG } : { org: ORG, user: `user-${i}` },
        name: `cred-${i}`,
        auth_type: "BEARER",
        values: { token: Redacted.make(`ghp_${i}_0123456789abcdefghijklmnopqrstuvwxyz`), region: Redacted.make("eu") },
        created_at: AT,
        updated_at: AT
      }
      yield* vault.put(credential)
      keys.push({ connectorId: home.id, scope: credential.scope, owner: credential.owner, name: credential.name })
    }
    const resolveTimes: Array<number> = []
    for (const i of shuffled(RESOLVES, 7)) {
      const k = keys[i % keys.length] as Key
      const start = performance.now()
      const found = yield* vault.get(k)
      resolveTimes.push(performance.now() - start)
      if (found._tag === "None") return yield* Effect.die(new Error(`credential ${k.name} not found`))
    }
    resolveTimes.sort((a, b) => a - b)
    console.log(
      `credential resolve (vault.get = select + unseal, ${grouped(CREDENTIALS)} credentials, ${grouped(RESOLVES)} calls): ` +
        `p50 ${ms(percentile(resolveTimes, 50))} · p99 ${ms(percentile(resolveTimes, 99))}`
    )

    // --- connector list pages --------------------------------------------------------------------------------
    const order = shuffled(LARGE, 11)
    const listPage = Effect.fn("bench.listPage")(function* (size: number, calls: number) {
      const inserted = order.slice(0, size).map((n) => connector(n + 1).id)
      const times: Array<number> = []
      for (let i = 0; i < calls; i++) {
        // A random cursor, and now and then the first page.
        const after = i % 10 === 0 ? undefined : inserted[(i * 7_919) % inserted.length]
        const start = performance.now()
        const page = yield* connectors.list(ORG, { limit: 100, after })
        times.push(performance.now() - start)
        if (page.length === 0) return yield* Effect.die(new Error("empty page"))
      }
      return times.sort((a, b) => a - b)
    })
    const seed = Effect.fn("bench.seed")(function* (from: number, to: number) {
      const start = performance.now()
      for (let i = from; i < to; i++) yield* connectors.insert(ORG, connector((order[i] as number) + 1))
      return performance.now() - start
    })

    const seedSmall = yield* seed(0, SMALL)
    yield* listPage(SMALL, LIST_CALLS) // warm-up: JIT and page cache
    const small = yield* listPage(SMALL, LIST_CALLS)
    const seedLarge = yield* seed(SMALL, LARGE)
    const large = yield* listPage(LARGE, LIST_CALLS)
    const p50Small = percentile(small, 50)
    const p50Large = percentile(large, 50)
    console.log(`connector inserts (one transaction each): ${grouped(perSecond(LARGE, seedSmall + seedLarge))}/s`)
    console.log(
      `connector list, page of 100: ${grouped(SMALL)} connectors p50 ${ms(p50Small)} (p99 ${ms(percentile(small, 99))}) · ` +
        `${grouped(LARGE)} connectors p50 ${ms(p50Large)} (p99 ${ms(percentile(large, 99))}) · ` +
        `ratio ${grouped(LARGE)}/${grouped(SMALL)} ${(p50Large / p50Small).toFixed(2)}`
    )
  }).pipe(Effect.provide(stores))

  console.log(`total ${((performance.now() - began) / 1000).toFixed(1)} s`)
})

Effect.runPromise(Effect.scoped(program)).catch((error: unknown) => {
  console.error("store bench failed:", error)
  process.exitCode = 1
})
