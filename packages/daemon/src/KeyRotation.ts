/**
 * Master key rotation (`switchboard key rotate`): every sealed value and the check value are re-sealed under a
 * new key in one transaction, then the new key becomes the one the configured provider finds.
 *
 * - Key file: a new random key is written to `master.key.next` (0600, synced, directory synced) before the
 *   commit, then renamed over `master.key`.
 * - Passphrase: the user gives the new passphrase; a fresh salt goes to `master.salt.next` the same way.
 * - Environment key: the user gives the new key (in another variable) or has one generated, which is handed over
 *   (printed) before the commit; afterwards `SWITCHBOARD_MASTER_KEY` must hold it.
 *
 * Crash safety is one mechanism, `KeyProvider.settle`: holding the database's write lock, it asks which key the
 * check value opens under and removes the pending file (the rotation did not commit) or renames it into place
 * (it did). The rotation settles after its commit, and after a failure; every open settles too (the layers hand
 * the key provider `databaseCheck`), so a rotation killed at any point leaves a data directory that the next
 * open finishes or undoes. The pending file is written inside the rotation transaction, while it holds the write
 * lock, so a settle in another process never meets a pending file whose commit is still undecided.
 */
import * as Sodium from "@switchboard/adapters/sodium"
import * as Sqlite from "@switchboard/adapters/sqlite"
import { SealError, StoreError, ValidationFailed } from "@switchboard/core/Errors"
import type { MasterKey } from "@switchboard/core/KeyProvider"
import { Sealer } from "@switchboard/core/Sealer"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { Env, Paths } from "./Layers.ts"

type SealerService = (typeof Sealer)["Service"]

const KeyProvider = Sodium.KeyProvider

/** Which provider holds the master key: `SWITCHBOARD_MASTER_KEY`, `SWITCHBOARD_PASSPHRASE` or the key file. */
export type Provider = Sodium.KeyProvider.Source

/** Where the new key comes from. */
export type NewKey =
  /** Nothing given: what the key file provider needs (it makes a random key itself). */
  | { readonly _tag: "Unspecified" }
  /**
   * A random environment key (`--generate`). `announce` hands it to the user (the CLI prints it) inside the
   * rotation transaction, before the commit: a key the user never received would lose the data.
   */
  | { readonly _tag: "Generate"; readonly announce: (key: Redacted.Redacted<string>) => Effect.Effect<void> }
  /** An environment key read from the variable `name` (`--new-key-from-env`). */
  | { readonly _tag: "FromEnv"; readonly name: string }
  /** The new passphrase (prompted for, or `--new-passphrase-stdin`). */
  | { readonly _tag: "Passphrase"; readonly passphrase: Redacted.Redacted<string> }

export interface Options {
  readonly paths: Pick<Paths, "home" | "database">
  /** The environment the providers read (`SWITCHBOARD_MASTER_KEY`, `SWITCHBOARD_PASSPHRASE`, `--new-key-from-env`). */
  readonly env: Env
  readonly newKey: NewKey
  /** The Argon2id cost of the passphrase provider; libsodium's MODERATE by default. */
  readonly passphrase?: Sodium.KeyProvider.PassphraseOptions | undefined
}

/** The result: how many values were re-sealed, and the public ids (fingerprints) of the old and new keys. */
export interface Rotated {
  readonly rotated: number
  readonly key_id_old: string
  readonly key_id_new: string
  readonly provider: Provider
}

/** The Argon2id cost the CLI uses for passphrases; tests make it cheap. */
export const PassphraseCost = Context.Reference<Sodium.KeyProvider.PassphraseOptions>(
  "@switchboard/daemon/KeyRotation/PassphraseCost",
  { defaultValue: () => ({}) }
)

// ---------------------------------------------------------------------------------------------------------------
// The database's check value, for settling

/**
 * The check value of the database `filename`, read inside a BEGIN IMMEDIATE transaction so `decide` runs holding
 * the write lock (a rotation in another process is either committed or not begun). No file, no check value; the
 * file is not created.
 */
export const databaseCheck = (filename: string): Sodium.KeyProvider.KeyCheck => ({
  locked: (decide) =>
    Effect.scoped(
      Effect.gen(function* () {
        if (!Fs.existsSync(filename)) return yield* decide(undefined)
        const db = yield* Sqlite.Database.open({ filename, schemaVersion: Sqlite.Migrations.latestVersion })
        return yield* db.transaction(
          Effect.gen(function* () {
            const version = yield* Sqlite.Migrations.currentVersion(db)
            const row =
              version < 1
                ? undefined
                : yield* db.get<{ readonly key_id: string; readonly sealed: Uint8Array }>(
                    "SELECT key_id, sealed FROM meta WHERE key = ?",
                    [Sodium.Sealer.checkValueContext.rowId]
                  )
            return yield* decide(row === undefined ? undefined : { keyId: row.key_id, bytes: row.sealed })
          })
        )
      })
    ).pipe(
      Effect.catchTag("StoreError", (error) =>
        Effect.fail(
          new SealError({
            reason: "key_unavailable",
            message: `settling a pending key rotation against the database ${filename} failed: ${error.message}`
          })
        )
      )
    )
})

/** The key provider configuration of a data directory, settling against its database. */
export const configOf = (
  options: Pick<Options, "paths" | "passphrase">,
  env: Env
): Sodium.KeyProvider.ConfigOptions & { readonly check: Sodium.KeyProvider.KeyCheck } => ({
  home: options.paths.home,
  env: { ...env },
  passphrase: options.passphrase,
  check: databaseCheck(options.paths.database)
})

// ---------------------------------------------------------------------------------------------------------------
// The rotation, in steps (the crash tests stop between them)

/** A rotation ready to run. */
export interface Plan {
  readonly provider: Provider
  readonly current: MasterKey
  readonly next: MasterKey
  /** Makes the next key recoverable; runs inside the rotation transaction, before its commit. */
  readonly prepare: Effect.Effect<void, SealError>
  /** The environment in which the provider finds the next key once the rotation is done. */
  readonly envAfter: Env
}

const refuse = (message: string, path: string, rule: string) =>
  new ValidationFailed({ message, details: { issues: [{ path, message: rule }] } })

// The flag that gave the new key, for refusals.
const flagOf = (newKey: NewKey) =>
  newKey._tag === "FromEnv"
    ? "--new-key-from-env"
    : newKey._tag === "Generate"
      ? "--generate"
      : newKey._tag === "Passphrase"
        ? "--new-passphrase-stdin"
        : "new key"

const nextKeyOf = Effect.fn("KeyRotation.nextKeyOf")(function* (options: Options, provider: Provider) {
  const { env, newKey, paths } = options
  switch (provider) {
    case "file": {
      if (newKey._tag !== "Unspecified") {
        return yield* refuse(
          `the master key is the key file ${Path.join(paths.home, KeyProvider.KEY_FILE)}: key rotate makes the ` +
            "new one itself (no --new-key-from-env, --generate or --new-passphrase-stdin)",
          flagOf(newKey),
          "not used with the key file"
        )
      }
      const next = yield* KeyProvider.generate("file")
      const prepare = KeyProvider.writePending(Path.join(paths.home, KeyProvider.KEY_FILE), Redacted.value(next.key))
      return { next, prepare, envAfter: env }
    }
    case "passphrase": {
      if (newKey._tag !== "Passphrase") {
        return yield* refuse(
          `the master key comes from ${KeyProvider.ENV_PASSPHRASE}: give the new passphrase at the prompt or ` +
            "with --new-passphrase-stdin",
          flagOf(newKey),
          `not used with ${KeyProvider.ENV_PASSPHRASE}`
        )
      }
      const text = Redacted.value(newKey.passphrase)
      if (text.length === 0) return yield* refuse("the new passphrase is empty", "new passphrase", "must not be empty")
      const salt = yield* KeyProvider.generateSalt()
      const next = yield* KeyProvider.fromPassphrase(newKey.passphrase, salt, options.passphrase)
      const prepare = KeyProvider.writePending(Path.join(paths.home, KeyProvider.SALT_FILE), salt)
      return { next, prepare, envAfter: { ...env, [KeyProvider.ENV_PASSPHRASE]: text } }
    }
    case "env": {
      if (newKey._tag === "Passphrase" || newKey._tag === "Unspecified") {
        return yield* refuse(
          `the master key comes from ${KeyProvider.ENV_MASTER_KEY}: give the new key with --new-key-from-env NAME ` +
            "(a variable holding it) or --generate (prints a new one, once)",
          flagOf(newKey),
          newKey._tag === "Unspecified" ? "required" : `not used with ${KeyProvider.ENV_MASTER_KEY}`
        )
      }
      let next: MasterKey
      if (newKey._tag === "FromEnv") {
        const value = env[newKey.name]
        if (value === undefined || value === "") {
          return yield* refuse(
            `the environment variable ${newKey.name} is not set`,
            "--new-key-from-env",
            `${newKey.name} is not set`
          )
        }
        next = yield* KeyProvider.fromEnv(Redacted.make(value), newKey.name)
      } else {
        next = yield* KeyProvider.generate("env")
      }
      const text = yield* KeyProvider.toBase64(next)
      const prepare = newKey._tag === "Generate" ? newKey.announce(text) : Effect.void
      return { next, prepare, envAfter: { ...env, [KeyProvider.ENV_MASTER_KEY]: Redacted.value(text) } }
    }
  }
})

/**
 * Resolves the current key (settling what an earlier interrupted rotation left) and the next one. Refuses when
 * there is no database, when the new key is not given the way the provider needs, or when it is the current key.
 */
export const plan = Effect.fn("KeyRotation.plan")(function* (options: Options) {
  if (!Fs.existsSync(options.paths.database)) {
    return yield* new StoreError({ message: `there is no database at ${options.paths.database}: nothing to rotate` })
  }
  const provider = KeyProvider.sourceOf(options.env)
  const current = yield* KeyProvider.fromConfig(configOf(options, options.env))
  const { next, prepare, envAfter } = yield* nextKeyOf(options, provider)
  if (next.id === current.id) {
    return yield* refuse("the new key is the current key", flagOf(options.newKey), "must differ from the current key")
  }
  return { provider, current, next, prepare, envAfter } satisfies Plan
})

// Runs `first` once, before the sealer's first seal.
const sealingAfter = (sealer: SealerService, first: Effect.Effect<void, SealError>) =>
  Effect.map(Effect.cached(first), (once) =>
    Sealer.of({
      keyId: sealer.keyId,
      open: sealer.open,
      seal: (plaintext, context) => Effect.andThen(once, sealer.seal(plaintext, context))
    })
  )

/**
 * Proves the current key against the database (migrating it if it is older), then re-seals everything under the
 * next key in one durable transaction. `plan.prepare` runs at the transaction's first seal: after the check value
 * proved the current key, before the commit, with the write lock held. `wrapNext` lets tests break the new sealer.
 */
export const reseal = Effect.fn("KeyRotation.reseal")(function* (
  plan: Plan,
  database: string,
  wrapNext: (sealer: SealerService) => SealerService = (sealer) => sealer
) {
  const current = yield* Sodium.Sealer.fromMasterKey(plan.current)
  const next = yield* sealingAfter(wrapNext(yield* Sodium.Sealer.fromMasterKey(plan.next)), plan.prepare)
  return yield* Effect.scoped(
    Effect.gen(function* () {
      const db = yield* Sqlite.Database.open({ filename: database, schemaVersion: Sqlite.Migrations.latestVersion })
      yield* Sqlite.Store.initialize(db, current)
      return yield* Sqlite.rotateKey(db, current, next)
    })
  )
})

/** After the commit: settles (the pending file replaces the current one) and checks that the provider now finds the next key. */
export const finish = Effect.fn("KeyRotation.finish")(function* (
  plan: Plan,
  options: Pick<Options, "paths" | "passphrase">
) {
  const found = yield* KeyProvider.fromConfig(configOf(options, plan.envAfter))
  if (found.id !== plan.next.id) {
    return yield* new SealError({
      reason: "key_unavailable",
      message: `the provider finds key ${found.id}, not the new key ${plan.next.id}`
    })
  }
})

/**
 * Rotates the master key of a data directory. Nothing else may have the database open with the old key while
 * this runs (the CLI refuses while a daemon runs); a process that does gets "key_mismatch" on its next write.
 */
export const rotate = Effect.fn("KeyRotation.rotate")(function* (
  options: Options,
  wrapNext?: (sealer: SealerService) => SealerService
) {
  const p = yield* plan(options)
  const counts = yield* reseal(p, options.paths.database, wrapNext).pipe(
    // Settling under the old configuration removes the pending file, unless the database did commit after all.
    Effect.onError(() => Effect.ignore(KeyProvider.settle(configOf(options, options.env))))
  )
  yield* finish(p, options).pipe(
    Effect.mapError(
      (error) =>
        new SealError({
          reason: error.reason,
          message:
            `the database is re-sealed under the new key ${p.next.id}, but finishing the rotation failed: ` +
            `${error.message}; the next start with the new key finishes it`
        })
    )
  )
  return {
    rotated: Sqlite.Store.sealedTables.reduce((sum, table) => sum + counts[table], 0),
    key_id_old: p.current.id,
    key_id_new: p.next.id,
    provider: p.provider
  } satisfies Rotated
})
