/**
 * Key providers of the `KeyProvider` port: the environment (`SWITCHBOARD_MASTER_KEY`), a passphrase stretched
 * with Argon2id (`SWITCHBOARD_PASSPHRASE`), a key file (`master.key`, mode 0600), and memory for tests.
 * Each layer resolves its key lazily, on the first `masterKey`, and keeps it. No error ever holds the key, the
 * passphrase or the text they were read from.
 */
import { SealError } from "@switchboard/core/Errors"
import { KeyProvider, type MasterKey } from "@switchboard/core/KeyProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { KEY_BYTES, keyIdOf, load, type Sodium } from "./internal/sodium.ts"

export const ENV_MASTER_KEY = "SWITCHBOARD_MASTER_KEY"
export const ENV_PASSPHRASE = "SWITCHBOARD_PASSPHRASE"
export const KEY_FILE = "master.key"
export const SALT_FILE = "master.salt"
export const SALT_BYTES = 16

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

/** The key in `SWITCHBOARD_MASTER_KEY`: 32 bytes of base64. */
export const fromEnv = Effect.fn("KeyProvider.fromEnv")(function* (value: Redacted.Redacted<string>) {
  const lib = yield* load("key_unavailable")
  const key = yield* decodeBase64(lib, Redacted.value(value), KEY_BYTES, ENV_MASTER_KEY)
  return yield* makeMasterKey(key, "env")
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
    const write = fsCall(`writing ${label} ${path}`, () => {
      const flags = Fs.constants.O_WRONLY | Fs.constants.O_CREAT | Fs.constants.O_EXCL | (Fs.constants.O_NOFOLLOW ?? 0)
      const fd = Fs.openSync(temporary, flags, 0o600)
      try {
        Fs.writeFileSync(fd, content)
        Fs.fsyncSync(fd)
      } finally {
        Fs.closeSync(fd)
      }
    })
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
    // Make the new directory entry durable too; best effort, some file systems cannot fsync a directory.
    if (created) {
      yield* Effect.try({
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
    }
    return created
  })

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

export interface ConfigOptions {
  /** The data directory: holds `master.key` and `master.salt`. */
  readonly home: string
  readonly env: Record<string, string | undefined>
  readonly passphrase?: PassphraseOptions | undefined
}

const nonEmpty = (value: string | undefined) => (value === undefined || value === "" ? undefined : value)

/** `SWITCHBOARD_MASTER_KEY`, else `SWITCHBOARD_PASSPHRASE` (salt in `<home>/master.salt`), else `<home>/master.key`. */
export const fromConfig = Effect.fn("KeyProvider.fromConfig")(function* (options: ConfigOptions) {
  const envKey = nonEmpty(options.env[ENV_MASTER_KEY])
  if (envKey !== undefined) return yield* fromEnv(Redacted.make(envKey))
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
