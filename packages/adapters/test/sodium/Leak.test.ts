/**
 * No secret reaches an error: a canary planted in plaintexts, keys, passphrases and key files never shows up
 * in any error's message, `String(error)`, `JSON.stringify(error)`, stack or pretty-printed cause.
 */
import { assert, describe, it } from "@effect/vitest"
import type { SealError } from "@switchboard/core/Errors"
import { KeyProvider as KeyProviderPort } from "@switchboard/core/KeyProvider"
import type { SealContext } from "@switchboard/core/Sealer"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { KeyProvider, Sealer } from "../../src/sodium/index.ts"

const CANARY = "sb-canary-7f3e9a1c"
const encoder = new TextEncoder()
const context: SealContext = { table: "credentials", rowId: "cred_01" }

const key = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff)
const otherKey = Uint8Array.from({ length: 32 }, (_, i) => (i * 53 + 5) & 0xff)

// Every spelling of a secret a careless error might carry.
const spellings = (secret: Uint8Array | string) => {
  const buffer = typeof secret === "string" ? Buffer.from(secret) : Buffer.from(secret)
  return [
    ...(typeof secret === "string" ? [secret] : []),
    buffer.toString("hex"),
    buffer.toString("base64").replace(/=+$/, ""),
    buffer.toString("base64url"),
    Array.from(buffer).join(",")
  ]
}

// Redacted values print through their own toString, which their type does not declare.
const render = (value: unknown) => String(value)

const secrets = [...spellings(CANARY), ...spellings(key), ...spellings(otherKey)]

const failureWith = <A, R>(effect: Effect.Effect<A, SealError, R>) =>
  Effect.gen(function* () {
    const exit = yield* Effect.exit(effect)
    assert.isTrue(Exit.isFailure(exit))
    if (Exit.isSuccess(exit)) return assert.fail("expected a failure")
    const error = Exit.findErrorOption(exit)
    assert.strictEqual(error._tag, "Some")
    return { cause: exit.cause, error: error._tag === "Some" ? error.value : assert.fail("no typed error") }
  })

const assertClean = (failure: { readonly cause: Cause.Cause<SealError>; readonly error: SealError }) => {
  const { cause, error } = failure
  const renderings = [
    error.message,
    String(error),
    JSON.stringify(error),
    error.stack ?? "",
    Cause.pretty(cause),
    JSON.stringify(error.details ?? null)
  ]
  for (const rendering of renderings) {
    for (const secret of secrets) assert.notInclude(rendering, secret)
  }
}

const masterKeyOf = (layer: Layer.Layer<KeyProviderPort>) =>
  KeyProviderPort.use((provider) => provider.masterKey).pipe(Effect.provide(layer))

const sealerWith = (bytes: Uint8Array) => Sealer.make.pipe(Effect.provide(KeyProvider.layerMemory(bytes)))

describe("sodium: secrets never reach errors", () => {
  it.effect("sealer failures", () =>
    Effect.gen(function* () {
      const sealer = yield* sealerWith(key)
      const other = yield* sealerWith(otherKey)
      const plaintext = Redacted.make(encoder.encode(`token=${CANARY}`))
      const sealed = yield* sealer.seal(plaintext, context)
      const tampered = sealed.bytes.slice()
      tampered[30] = tampered[30]! ^ 0x80
      const failures = [
        yield* failureWith(sealer.open(sealed, { ...context, rowId: "cred_02" })),
        yield* failureWith(sealer.open({ keyId: sealed.keyId, bytes: tampered }, context)),
        yield* failureWith(other.open(sealed, context)),
        yield* failureWith(other.open({ keyId: other.keyId, bytes: sealed.bytes }, context)),
        yield* failureWith(sealer.seal(plaintext, { table: "t", rowId: "\udc00" })),
        yield* failureWith(Sealer.verifyCheckValue(other, yield* Sealer.makeCheckValue(sealer)))
      ]
      failures.forEach(assertClean)
      // The opened value itself prints redacted.
      const opened = yield* sealer.open(sealed, context)
      assert.notInclude(render(opened), CANARY)
      assert.notInclude(JSON.stringify({ opened }), CANARY)
    })
  )

  it.effect("key provider failures and the master key itself", () =>
    Effect.gen(function* () {
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "sb-sodium-leak-"))),
        (path) => Effect.sync(() => Fs.rmSync(path, { recursive: true, force: true }))
      )
      const keyFile = (name: string, content: string, mode: number) => {
        const path = Path.join(dir, name)
        Fs.writeFileSync(path, content, { mode })
        Fs.chmodSync(path, mode)
        return path
      }
      const shortKey = Buffer.from(`${CANARY}${CANARY}`).toString("base64") // valid base64, wrong length
      const failures = [
        yield* failureWith(masterKeyOf(KeyProvider.layerEnv(Redacted.make(CANARY)))),
        yield* failureWith(masterKeyOf(KeyProvider.layerEnv(Redacted.make(shortKey)))),
        yield* failureWith(masterKeyOf(KeyProvider.layerEnv(Redacted.make(`${Buffer.from(key).toString("base64")}!`)))),
        yield* failureWith(masterKeyOf(KeyProvider.layerFile(keyFile("bad.key", CANARY, 0o600)))),
        yield* failureWith(masterKeyOf(KeyProvider.layerFile(keyFile("short.key", shortKey, 0o600)))),
        yield* failureWith(
          masterKeyOf(KeyProvider.layerFile(keyFile("open.key", Buffer.from(key).toString("base64"), 0o644)))
        ),
        yield* failureWith(
          masterKeyOf(KeyProvider.layerPassphrase(Redacted.make(CANARY), new Uint8Array(3), { opsLimit: 1 }))
        ),
        yield* failureWith(masterKeyOf(KeyProvider.layerConfig({ home: dir, env: { SWITCHBOARD_MASTER_KEY: CANARY } })))
      ]
      failures.forEach(assertClean)

      const master = yield* masterKeyOf(KeyProvider.layerEnv(Redacted.make(Buffer.from(key).toString("base64"))))
      for (const rendering of [render(master.key), JSON.stringify(master), master.id]) {
        for (const secret of spellings(key)) assert.notInclude(rendering, secret)
      }
    })
  )
})
