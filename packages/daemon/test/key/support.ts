/**
 * Helpers of the key rotation tests: a temporary data directory, a Switchboard on it opened the way every way in
 * opens it (the real layers, so interrupted rotations are settled), canary secrets in a credential, a
 * connection's security values and a write-only header, and reading them back.
 */
import { assert } from "@effect/vitest"
import * as Sodium from "@switchboard/adapters/sodium"
import * as Sqlite from "@switchboard/adapters/sqlite"
import type { SealError } from "@switchboard/core/Errors"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as KeyRotation from "../../src/KeyRotation.ts"
import * as Layers from "../../src/Layers.ts"
import { apiKeyConnector } from "../support.ts"

export const CANARY = {
  credential: "sk-CANARY-cred-9f3a1c",
  security: "sk-CANARY-conn-7b2e4d",
  header: "CANARY-hdr-51c0aa"
}

/** The Argon2id cost the tests use (libsodium's minimum), so passphrase tests stay fast. */
export const fast = { opsLimit: 1, memLimit: 8192 }

export interface Home {
  readonly dir: string
  readonly paths: Layers.Paths
  readonly keyFile: string
  readonly saltFile: string
  readonly cleanup: () => void
}

/** A fresh data directory (created 0700) with a socket path of its own. */
export const makeHome = (): Home => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sbk-"))
  const paths = Layers.resolvePaths({ home: Path.join(dir, "home"), env: { SWITCHBOARD_SOCKET: Path.join(dir, "s") } })
  Fs.mkdirSync(paths.home, { mode: 0o700 })
  return {
    dir,
    paths,
    keyFile: Path.join(paths.home, Sodium.KeyProvider.KEY_FILE),
    saltFile: Path.join(paths.home, Sodium.KeyProvider.SALT_FILE),
    cleanup: () => Fs.rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * The Switchboard on the data directory's SQLite file, its key from `env` exactly as `Layers.sealerLayer` finds it
 * (settling an interrupted rotation first), with a cheap Argon2id cost so passphrase tests stay fast.
 */
export const switchboardOn = (home: Home, env: Layers.Env) =>
  Switchboard.layer.pipe(
    Layer.provide(Sqlite.layer({ filename: home.paths.database })),
    Layer.provide(Sodium.Sealer.layer),
    Layer.provide(Sodium.KeyProvider.layerConfig(KeyRotation.configOf({ paths: home.paths, passphrase: fast }, env)))
  )

const sb = Effect.service(Switchboard.Switchboard)

/** A connector, an organization credential and two connections, each holding a canary secret. */
export const seed = (home: Home, env: Layers.Env) =>
  Effect.gen(function* () {
    const s = yield* sb
    yield* s.createConnector(apiKeyConnector)
    yield* s.setCredential("acme-api", "organization", {
      name: "default",
      values: { api_key: CANARY.credential, domain: "api.acme.test" }
    })
    yield* s.createConnection("acme-api", { name: "Stored", access_scope: "organizational" })
    yield* s.createConnection("acme-api", {
      name: "Inline",
      access_scope: "organizational",
      security: { api_key: CANARY.security, domain: "api.acme.test" },
      headers: { "X-Secret": CANARY.header }
    })
  }).pipe(Effect.provide(switchboardOn(home, env)))

/** The sealed values read back (through the credential resolution every call uses). */
export const readSecrets = (home: Home, env: Layers.Env) =>
  Effect.gen(function* () {
    const s = yield* sb
    const stored = yield* s.resolveCall("Stored")
    const inline = yield* s.resolveCall("Inline")
    const value = (values: Readonly<Record<string, Redacted.Redacted<string>>>, name: string) => {
      const v = values[name]
      return v === undefined ? undefined : Redacted.value(v)
    }
    return {
      credential: value(stored.values, "api_key"),
      security: value(inline.values, "api_key"),
      header: value(inline.headers, "X-Secret")
    }
  }).pipe(Effect.provide(switchboardOn(home, env)))

/** Opening the data directory with `env` fails with "key_mismatch" (the key is not the database's). */
export const expectMismatch = (home: Home, env: Layers.Env) =>
  Effect.gen(function* () {
    const error = yield* Effect.flip(Effect.scoped(Layer.build(switchboardOn(home, env))))
    assert.strictEqual(error._tag, "SealError", error.message)
    assert.strictEqual((error as SealError).reason, "key_mismatch")
    return error
  })

/** The data directory's files and their bytes (the socket directory aside). */
export const snapshot = (home: Home): Record<string, string> =>
  Object.fromEntries(
    Fs.readdirSync(home.paths.home)
      .sort()
      .map((name) => [name, Fs.readFileSync(Path.join(home.paths.home, name)).toString("hex")])
  )

export const base64Key = (fill: number) => Buffer.alloc(32, fill).toString("base64")

/** Every spelling of a key that output might carry. */
export const spellings = (base64: string): ReadonlyArray<string> => {
  const bytes = Buffer.from(base64, "base64")
  return [bytes.toString("base64"), bytes.toString("base64url"), bytes.toString("hex"), base64.replace(/=+$/u, "")]
}
