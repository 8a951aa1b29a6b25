/**
 * Key providers of the `KeyProvider` port: the environment (`SWITCHBOARD_MASTER_KEY`), a passphrase stretched
 * with Argon2id (`SWITCHBOARD_PASSPHRASE`), a key file (`master.key`, mode 0600), and memory for tests.
 * Each layer resolves its key lazily, on the first `masterKey`, and keeps it. No error ever holds the key, the
 * passphrase or the text they were read from.
 *
 * Rotation and its recovery: `key rotate` writes the next key file (or the next salt) as `master.key.next`
 * (`master.salt.next`) before the database commits to it, then settles. Settling asks the database, holding its
 * write lock, which key its check value opens under: the current file's (the rotation did not commit: the
 * pending file is removed) or the pending file's (it did: the pending file is renamed over the current one).
 * `fromConfig` settles whenever a pending file is there, so a rotation killed between its commit and its rename
 * is finished by the next open, and one killed before its commit is undone.
 */
import { SealError } from "@switchboard/core/Errors"
import { KeyProvider, type MasterKey } from "@switchboard/core/KeyProvider"
import type { Sealed } from "@switchboard/core/Sealer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { KEY_BYTES, keyIdOf, load, type Sodium } from "./internal/sodium.ts"
import { fromMasterKey, verifyCheckValue } from "./Sealer.ts"

export const ENV_MASTER_KEY = "SWITCHBOARD_MASTER_KEY"
export const ENV_PASSPHRASE = "SWITCHBOARD_PASSPHRASE"
export const KEY_FILE = "master.key"
export const SALT_FILE = "master.salt"
export const SALT_BYTES = 16
/** What a pending file is called: the current one's name with this suffix. */
export const NEXT_SUFFIX = ".next"
export const KEY_FILE_NEXT = `${KEY_FILE}${NEXT_SUFFIX}`
export const SALT_FILE_NEXT = `${SALT_FILE}${NEXT_SUFFIX}`

/** Which provider the environment selects: `SWITCHBOARD_MASTER_KEY`, else `SWITCHBOARD_PASSPHRASE`, else the key file. */
export type Source = "env" | "passphrase" | "file"

/** Argon2id cost; the defaults are libsodium's MODERATE limits. Tests pass the MIN limits to run fast. */
export interface PassphraseOptions {
  readonly opsLimit?: number | undefined
  readonly memLimit?: number | undefined
}

const invalid = (message: string) => new SealError({ reason: "key_invalid", message })
const unavailable = (message: string) => new SealError({ reason: "key_unavailable", message })

/** A master key from raw bytes, with its id. */
export const makeMasterKey = Effect.fn("KeyProvider.makeMasterKey")(function* (
  key: Uint8Array,
  source: MasterKey["source"]
) {
  const lib = yield* load("key_unavailable")
  if (key.length !== KEY_BYTES) return yield* invalid(`a master key must be ${KEY_BYTES} bytes, not ${key.length}`)
  const copy = key.slice()
  return { id: keyIdOf(lib, copy), key: Redacted.make(copy), source } satisfies MasterKey
})

const STANDARD = /^[A-Za-z0-9+/]+={0,2}$/
const URL_SAFE = /^[A-Za-z0-9_-]+={0,2}$/

// Strict base64 (standard or url-safe, padded or not) of exactly `size` bytes. `label` names the source and
// is the only thing the error says about it.
const decodeBase64 = (lib: Sodium, text: string, size: number, label: string) =>
  Effect.gen(function* () {
    const trimmed = text.trim()
    const padded = trimmed.endsWith("=")
    const variant = STANDARD.test(trimmed)
      ? padded
        ? lib.base64_variants.ORIGINAL
        : lib.base64_variants.ORIGINAL_NO_PADDING
      : URL_SAFE.test(trimmed)
        ? padded
          ? lib.base64_variants.URLSAFE
          : lib.base64_variants.URLSAFE_NO_PADDING
        : undefined
    const hint = `it must be ${size} random bytes in base64 (make one with: openssl rand -base64 ${size})`
    if (variant === undefined) return yield* invalid(`${label} is not base64; ${hint}`)
    const bytes = yield* Effect.try({
      try: () => lib.from_base64(trimmed, variant),
      catch: () => invalid(`${label} is not valid base64; ${hint}`)
    })
    if (bytes.length !== size) return yield* invalid(`${label} decodes to ${bytes.length} bytes; ${hint}`)
    return bytes
  })

/** The key in `SWITCHBOARD_MASTER_KEY` (or the variable `label` names): 32 bytes of base64. */
export const fromEnv = Effect.fn("KeyProvider.fromEnv")(function* (
  value: Redacted.Redacted<string>,
  label: string = ENV_MASTER_KEY
) {
  const lib = yield* load("key_unavailable")
  const key = yield* decodeBase64(lib, Redacted.value(value), KEY_BYTES, label)
  return yield* makeMasterKey(key, "env")
})

/** A new random master key. */
export const generate = Effect.fn("KeyProvider.generate")(function* (source: MasterKey["source"]) {
  const lib = yield* load("key_unavailable")
  return yield* makeMasterKey(lib.randombytes_buf(KEY_BYTES), source)
})

/** A new random passphrase salt. */
export const generateSalt = Effect.fn("KeyProvider.generateSalt")(function* () {
  const lib = yield* load("key_unavailable")
  return lib.randombytes_buf(SALT_BYTES)
})

/** A master key as standard padded base64, the form `SWITCHBOARD_MASTER_KEY` and the key file take. */
export const toBase64 = Effect.fn("KeyProvider.toBase64")(function* (masterKey: MasterKey) {
  const lib = yield* load("key_unavailable")
  return Redacted.make(lib.to_base64(Redacted.value(masterKey.key), lib.base64_variants.ORIGINAL))
})

/**
 * The key stretched from a passphrase with Argon2id. The passphrase is NFC-normalised first, so the same
 * words typed on different systems give the same key.
 */
export const fromPassphrase = Effect.fn("KeyProvider.fromPassphrase")(function* (
  passphrase: Redacted.Redacted<string>,
  salt: Uint8Array,
  options?: PassphraseOptions
) {
  const lib = yield* load("key_unavailable")
  const text = Redacted.value(passphrase).normalize("NFC")
  if (text.length === 0) return yield* invalid(`${ENV_PASSPHRASE} is empty`)
  if (salt.length !== SALT_BYTES) {
    return yield* invalid(`the passphrase salt must be ${SALT_BYTES} bytes, not ${salt.length}`)
  }
  const key = yield* Effect.try({
    try: () =>
      lib.crypto_pwhash(
        KEY_BYTES,
        text,
        salt,
        options?.opsLimit ?? lib.crypto_pwhash_OPSLIMIT_MODERATE,
        options?.memLimit ?? lib.crypto_pwhash_MEMLIMIT_MODERATE,
        lib.crypto_pwhash_ALG_ARGON2ID13
      ),
    catch: () => unavailable(`deriving the key from ${ENV_PASSPHRASE} failed (Argon2id limits or memory)`)
  })
  return yield* makeMasterKey(key, "passphrase")
})

const errnoOf = (error: unknown): string => {
  const code = (error as { readonly code?: unknown } | null)?.code
  return typeof code === "string" ? code : "unknown error"
}

const fsCall = <A>(doing: string, f: () => A) =>
  Effect.try({ try: f, catch: (error) => unavailable(`${doing} failed: ${errnoOf(error)}`) })

const checkPermissions = process.platform !== "win32"

/**
 * Reads a small file that must be a regular file owned by this user, with none of `forbiddenModeBits` set.
 * A symbolic link is refused (O_NOFOLLOW), a FIFO cannot block the read (O_NONBLOCK). Missing → undefined.
 */
const readGuarded = (path: string, label: string, forbiddenModeBits: number) =>
  Effect.gen(function* () {
    const flags = Fs.constants.O_RDONLY | (Fs.constants.O_NOFOLLOW ?? 0) | (Fs.constants.O_NONBLOCK ?? 0)
    const fd = yield* Effect.try({ try: () => Fs.openSync(path, flags), catch: errnoOf }).pipe(
      Effect.catch((code) =>
        code === "ENOENT"
          ? Effect.succeed(undefined)
          : code === "ELOOP" || code === "EMLINK"
            ? Effect.fail(invalid(`${label} ${path} is a symbolic link; it must be a regular file`))
            : Effect.fail(unavailable(`opening ${label} ${path} failed: ${code}`))
      )
    )
    if (fd === undefined) return undefined
    return yield* Effect.gen(function* () {
      const stat = yield* fsCall(`reading ${label} ${path}`, () => Fs.fstatSync(fd))
      if (!stat.isFile()) return yield* invalid(`${label} ${path} is not a regular file`)
      if (checkPermissions) {
        const mode = stat.mode & 0o777
        if ((mode & forbiddenModeBits) !== 0) {
          return yield* invalid(
            `${label} ${path} has mode 0${mode.toString(8)}, which lets other users at it; ` +
              `it must be 0600 (run: chmod 600 ${path})`
          )
        }
        const uid = process.getuid?.()
        if (uid !== undefined && stat.uid !== uid) {
          return yield* invalid(`${label} ${path} is owned by uid ${stat.uid}, not by this user (uid ${uid})`)
        }
      }
      if (stat.size > 1024) return yield* invalid(`${label} ${path} is too large to be a key file`)
      return yield* fsCall(`reading ${label} ${path}`, () => Fs.readFileSync(fd, "utf8"))
    }).pipe(Effect.ensuring(Effect.sync(() => Fs.closeSync(fd))))
  })

/** Writes `content` to a new file `path` (O_EXCL, never through a link, mode 0600) and syncs it to disk. */
const writeNewSynced = (path: string, content: string) => {
  const flags = Fs.constants.O_WRONLY | Fs.constants.O_CREAT | Fs.constants.O_EXCL | (Fs.constants.O_NOFOLLOW ?? 0)
  const fd = Fs.openSync(path, flags, 0o600)
  try {
    Fs.writeFileSync(fd, content)
    Fs.fsyncSync(fd)
  } finally {
    Fs.closeSync(fd)
  }
}

/**
 * Creates `path` with `content`, mode 0600, only if it does not exist yet. The content is written and synced
 * to a temporary file (O_EXCL, 0600) first and then hard-linked into place, which fails if the path exists:
 * two processes starting together never see a half-written file, and the loser reads the winner's.
 * Returns false when the path already existed.
 */
const createExclusive = (lib: Sodium, path: string, content: string, label: string) =>
  Effect.gen(function* () {
    const dir = Path.dirname(path)
    yield* fsCall(`creating the directory ${dir}`, () => Fs.mkdirSync(dir, { recursive: true, mode: 0o700 }))
    const temporary = `${path}.${lib.to_hex(lib.randombytes_buf(8))}.tmp`
    const write = fsCall(`writing ${label} ${path}`, () => writeNewSynced(temporary, content))
    const link = Effect.try({ try: () => Fs.linkSync(temporary, path), catch: errnoOf }).pipe(
      Effect.as(true),
      Effect.catch((code) =>
        code === "EEXIST"
          ? Effect.succeed(false)
          : Effect.fail(unavailable(`creating ${label} ${path} failed: ${code}`))
      )
    )
    const created = yield* write.pipe(
      Effect.andThen(link),
      Effect.ensuring(Effect.sync(() => Fs.rmSync(temporary, { force: true })))
    )
    if (created) yield* syncDir(dir)
    return created
  })

// Makes the directory's entries (a new, renamed or removed file) durable; best effort, some file systems cannot
// fsync a directory.
const syncDir = (dir: string) =>
  Effect.try({
    try: () => {
      const fd = Fs.openSync(dir, Fs.constants.O_RDONLY)
      try {
        Fs.fsyncSync(fd)
      } finally {
        Fs.closeSync(fd)
      }
    },
    catch: () => undefined
  }).pipe(Effect.ignore)

// Reads `size` random bytes kept as base64 in `path`, creating them on first use.
const loadOrCreate = (lib: Sodium, path: string, label: string, size: number, forbiddenModeBits: number) =>
  Effect.gen(function* () {
    for (let attempt = 0; attempt < 2; attempt++) {
      const text = yield* readGuarded(path, label, forbiddenModeBits)
      if (text !== undefined) return yield* decodeBase64(lib, text, size, `${label} ${path}`)
      const bytes = lib.randombytes_buf(size)
      const content = `${lib.to_base64(bytes, lib.base64_variants.ORIGINAL)}\n`
      if (yield* createExclusive(lib, path, content, label)) return bytes
    }
    return yield* unavailable(`${label} ${path} could not be read or created`)
  })

/** The key in a key file, created with 32 random bytes on first use; refused unless it is a private regular file. */
export const fromFile = Effect.fn("KeyProvider.fromFile")(function* (path: string) {
  const lib = yield* load("key_unavailable")
  const key = yield* loadOrCreate(lib, path, "the key file", KEY_BYTES, 0o077)
  return yield* makeMasterKey(key, "file")
})

/** The salt of the passphrase, kept beside the database; it is not secret, but nobody else may change it. */
export const saltFromFile = Effect.fn("KeyProvider.saltFromFile")(function* (path: string) {
  const lib = yield* load("key_unavailable")
  return yield* loadOrCreate(lib, path, "the salt file", SALT_BYTES, 0o022)
})

// ---------------------------------------------------------------------------------------------------------------
// Pending files: rotation and its recovery

/**
 * Writes `bytes` (as base64) to `<path>.next`, mode 0600: to a synced temporary file first, renamed into place,
 * then the directory is synced. The pending file is absent or whole, never half-written, and it is on disk
 * before this returns. A pending file already there is replaced: only call this once the database has proved
 * the current key, holding its write lock (then any pending file is a leftover no database opens with).
 */
export const writePending = Effect.fn("KeyProvider.writePending")(function* (path: string, bytes: Uint8Array) {
  const lib = yield* load("key_unavailable")
  const target = `${path}${NEXT_SUFFIX}`
  const dir = Path.dirname(target)
  const temporary = `${target}.${lib.to_hex(lib.randombytes_buf(8))}.tmp`
  const content = `${lib.to_base64(bytes, lib.base64_variants.ORIGINAL)}\n`
  yield* fsCall(`writing ${target}`, () => {
    writeNewSynced(temporary, content)
    Fs.renameSync(temporary, target)
  }).pipe(Effect.ensuring(Effect.sync(() => Fs.rmSync(temporary, { force: true }))))
  yield* syncDir(dir)
})

/**
 * The database's check value, for settling a pending file. `locked` runs `decide` holding the database's write
 * lock, so no rotation commits in between, with the sealed check value (undefined when there is no database or
 * it has no check value yet).
 */
export interface KeyCheck {
  readonly locked: <A>(
    decide: (check: Sealed | undefined) => Effect.Effect<A, SealError>
  ) => Effect.Effect<A, SealError>
}

/** What settling did: nothing pending; the pending file removed or adopted; or neither key proved, all left alone. */
export type Settled = "none" | "discarded" | "adopted" | "undecided"

interface Settlement {
  readonly settled: Settled
  /** The key the database proved, when one did. */
  readonly key?: MasterKey | undefined
}

// Whether the check value opens under `key`; any failure other than a mismatch is reported.
const proves = (check: Sealed | undefined, key: MasterKey) =>
  check === undefined || check.keyId !== key.id
    ? Effect.succeed(false)
    : fromMasterKey(key).pipe(
        Effect.flatMap((sealer) => verifyCheckValue(sealer, check)),
        Effect.as(true),
        Effect.catch((error) => (error.reason === "key_mismatch" ? Effect.succeed(false) : Effect.fail(error)))
      )

/** A file that holds key material (the key file or the passphrase salt) and how it becomes a master key. */
interface Slot {
  readonly path: string
  readonly label: string
  readonly size: number
  readonly forbiddenModeBits: number
  readonly derive: (bytes: Uint8Array) => Effect.Effect<MasterKey, SealError>
}

const readSlot = (lib: Sodium, path: string, slot: Slot) =>
  Effect.flatMap(readGuarded(path, slot.label, slot.forbiddenModeBits), (text) =>
    text === undefined ? Effect.succeed(undefined) : decodeBase64(lib, text, slot.size, `${slot.label} ${path}`)
  )

/**
 * Settles `<slot>.next` against the database, under its write lock: when the current file's key opens the check
 * value, the rotation did not commit and the pending file goes; when the pending file's key does, it did, and the
 * pending file replaces the current one (an atomic rename). Otherwise nothing changes. Also gives the key that
 * was proved, if any, so the caller need not derive it again.
 */
const settleSlot = (lib: Sodium, slot: Slot, check: KeyCheck): Effect.Effect<Settlement, SealError> =>
  Effect.gen(function* () {
    const pendingPath = `${slot.path}${NEXT_SUFFIX}`
    const none: Settlement = { settled: "none" }
    // Cheap and lock-free in the usual case: nothing pending.
    if (!Fs.existsSync(pendingPath)) return none
    return yield* check.locked(
      (value): Effect.Effect<Settlement, SealError> =>
        Effect.gen(function* () {
          const pending = yield* readSlot(lib, pendingPath, slot)
          if (pending === undefined) return none // settled by another process meanwhile
          const current = yield* readSlot(lib, slot.path, slot)
          if (current !== undefined) {
            const key = yield* slot.derive(current)
            if (yield* proves(value, key)) {
              yield* fsCall(`removing ${pendingPath}`, () => Fs.rmSync(pendingPath, { force: true }))
              yield* syncDir(Path.dirname(slot.path))
              return { settled: "discarded", key }
            }
          }
          const key = yield* slot.derive(pending)
          if (yield* proves(value, key)) {
            yield* fsCall(`moving ${pendingPath} into place`, () => Fs.renameSync(pendingPath, slot.path))
            yield* syncDir(Path.dirname(slot.path))
            return { settled: "adopted", key }
          }
          return { settled: "undecided" }
        })
    )
  })

export interface ConfigOptions {
  /** The data directory: holds `master.key` and `master.salt`. */
  readonly home: string
  readonly env: Record<string, string | undefined>
  readonly passphrase?: PassphraseOptions | undefined
  /**
   * The database's check value. With it, a pending key or salt file left by an interrupted `key rotate` is
   * settled (see `settle`) before the key is resolved; without it, pending files are ignored.
   */
  readonly check?: KeyCheck | undefined
}

const nonEmpty = (value: string | undefined) => (value === undefined || value === "" ? undefined : value)

/** The provider the environment selects. */
export const sourceOf = (env: Record<string, string | undefined>): Source =>
  nonEmpty(env[ENV_MASTER_KEY]) !== undefined
    ? "env"
    : nonEmpty(env[ENV_PASSPHRASE]) !== undefined
      ? "passphrase"
      : "file"

// The file settling concerns under a configuration: the key file, the salt file, or none for an env key.
const slotOf = (options: ConfigOptions): Slot | undefined => {
  switch (sourceOf(options.env)) {
    case "env":
      return undefined
    case "passphrase": {
      const passphrase = Redacted.make(options.env[ENV_PASSPHRASE] ?? "")
      return {
        path: Path.join(options.home, SALT_FILE),
        label: "the salt file",
        size: SALT_BYTES,
        forbiddenModeBits: 0o022,
        derive: (salt) => fromPassphrase(passphrase, salt, options.passphrase)
      }
    }
    case "file":
      return {
        path: Path.join(options.home, KEY_FILE),
        label: "the key file",
        size: KEY_BYTES,
        forbiddenModeBits: 0o077,
        derive: (key) => makeMasterKey(key, "file")
      }
  }
}

/**
 * Settles the pending file of the configured provider (`master.key.next`, or `master.salt.next` with the
 * configured passphrase) against the database: removed when the database still opens with the current file,
 * renamed over it when the database opens with the pending one. `key rotate` calls this after its commit (and
 * after a failure); `fromConfig` calls it at every open, which is how an interrupted rotation is recovered.
 */
export const settle = Effect.fn("KeyProvider.settle")(function* (
  options: ConfigOptions & { readonly check: KeyCheck }
) {
  const slot = slotOf(options)
  if (slot === undefined) return "none" satisfies Settled
  const lib = yield* load("key_unavailable")
  return (yield* settleSlot(lib, slot, options.check)).settled
})

/**
 * `SWITCHBOARD_MASTER_KEY`, else `SWITCHBOARD_PASSPHRASE` (salt in `<home>/master.salt`), else `<home>/master.key`;
 * with `check`, a pending file is settled first.
 */
export const fromConfig = Effect.fn("KeyProvider.fromConfig")(function* (options: ConfigOptions) {
  const envKey = nonEmpty(options.env[ENV_MASTER_KEY])
  if (envKey !== undefined) return yield* fromEnv(Redacted.make(envKey))
  const slot = slotOf(options)
  if (slot !== undefined && options.check !== undefined) {
    const lib = yield* load("key_unavailable")
    const settled = yield* settleSlot(lib, slot, options.check)
    if (settled.key !== undefined) return settled.key
  }
  const passphrase = nonEmpty(options.env[ENV_PASSPHRASE])
  if (passphrase !== undefined) {
    const salt = yield* saltFromFile(Path.join(options.home, SALT_FILE))
    return yield* fromPassphrase(Redacted.make(passphrase), salt, options.passphrase)
  }
  return yield* fromFile(Path.join(options.home, KEY_FILE))
})

/** A random key, or the given one, for tests. */
export const fromMemory = Effect.fn("KeyProvider.fromMemory")(function* (key?: Uint8Array) {
  const lib = yield* load("key_unavailable")
  return yield* makeMasterKey(key ?? lib.randombytes_buf(KEY_BYTES), "memory")
})

/** A provider that resolves its key on the first `masterKey` and keeps it. */
export const layerFrom = (resolve: Effect.Effect<MasterKey, SealError>): Layer.Layer<KeyProvider> =>
  Layer.effect(
    KeyProvider,
    Effect.map(Effect.cached(resolve), (masterKey) => KeyProvider.of({ masterKey }))
  )

export const layerEnv = (value: Redacted.Redacted<string>): Layer.Layer<KeyProvider> => layerFrom(fromEnv(value))

export const layerPassphrase = (
  passphrase: Redacted.Redacted<string>,
  salt: Uint8Array,
  options?: PassphraseOptions
): Layer.Layer<KeyProvider> => layerFrom(fromPassphrase(passphrase, salt.slice(), options))

export const layerFile = (path: string): Layer.Layer<KeyProvider> => layerFrom(fromFile(path))

export const layerConfig = (options: ConfigOptions): Layer.Layer<KeyProvider> => layerFrom(fromConfig(options))

export const layerMemory = (key?: Uint8Array): Layer.Layer<KeyProvider> => layerFrom(fromMemory(key?.slice()))
