/**
 * libsodium adapter of the `Sealer` port: XChaCha20-Poly1305 (IETF AEAD) with a fresh random 24-byte nonce per
 * seal, drawn from node's CSPRNG (`crypto.randomFillSync`: the same source libsodium's WebAssembly build reads,
 * four bytes per call into JavaScript, which made it most of the cost of a seal). Sealed bytes are `version (1 byte) || nonce (24) || ciphertext and tag`. The associated data binds
 * them to their table, row id and key id, so a value copied into another row or table does not open, and a
 * value sealed under another key is reported as such before anything is tried.
 */
import { SealError } from "@switchboard/core/Errors"
import { KeyProvider, type MasterKey } from "@switchboard/core/KeyProvider"
import { type SealContext, type Sealed, Sealer } from "@switchboard/core/Sealer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { randomFillSync } from "node:crypto"
import { KEY_BYTES, load } from "./internal/sodium.ts"

/** The first byte of every sealed value. */
export const VERSION = 1

const NONCE_BYTES = 24
const TAG_BYTES = 16
const HEADER_BYTES = 1 + NONCE_BYTES

// Names the format (and its version) inside the associated data, so these bytes mean nothing to any other use.
const DOMAIN = "switchboard:v1"

const encoder = new TextEncoder()
const DOMAIN_BYTES = encoder.encode(DOMAIN)

// With the `u` flag a well-formed surrogate pair is one code point, so this only matches a lone surrogate.
const LONE_SURROGATE = /\p{Cs}/u

/**
 * The associated data of a sealed value: the domain, table, row id and key id, each as a 4-byte big-endian
 * length followed by its UTF-8 bytes. Length prefixes (rather than separators) keep the encoding unambiguous
 * whatever characters a row id holds.
 */
export const associatedData = (context: SealContext, keyId: string): Uint8Array =>
  frame([DOMAIN_BYTES, encoder.encode(context.table), encoder.encode(context.rowId), encoder.encode(keyId)])

const frame = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  let size = 0
  for (const part of parts) size += 4 + part.length
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  let offset = 0
  for (const part of parts) {
    view.setUint32(offset, part.length)
    out.set(part, offset + 4)
    offset += 4 + part.length
  }
  return out
}

/**
 * `associatedData` for one key id, with the parts that repeat (domain, key id, the few table names) encoded
 * once: only the row id is encoded per call. The same bytes as `associatedData`.
 */
const associatedDataFor = (keyId: string): ((context: SealContext) => Uint8Array) => {
  const keyIdBytes = encoder.encode(keyId)
  const tables = new Map<string, Uint8Array>()
  return (context) => {
    let table = tables.get(context.table)
    if (table === undefined) {
      table = encoder.encode(context.table)
      if (tables.size < 64) tables.set(context.table, table)
    }
    return frame([DOMAIN_BYTES, table, encoder.encode(context.rowId), keyIdBytes])
  }
}

// UTF-8 maps every lone surrogate to U+FFFD, so two such contexts would share associated data: refuse them.
const checkContext = (context: SealContext, reason: "seal_failed" | "open_failed") =>
  LONE_SURROGATE.test(context.table) || LONE_SURROGATE.test(context.rowId)
    ? Effect.fail(new SealError({ reason, message: "the table or row id of a sealed value is not valid Unicode" }))
    : Effect.void

const where = (context: SealContext) => `${context.table} row ${context.rowId}`

/** Builds the sealer for one master key (key rotation opens with the old key and seals with the new one). */
export const fromMasterKey = Effect.fn("Sealer.fromMasterKey")(function* (masterKey: MasterKey) {
  const lib = yield* load("seal_failed")
  const key = masterKey.key
  if (Redacted.value(key).length !== KEY_BYTES) {
    return yield* new SealError({ reason: "key_invalid", message: `the master key must be ${KEY_BYTES} bytes` })
  }
  const keyId = masterKey.id
  const adOf = associatedDataFor(keyId)

  const seal = Effect.fn("Sealer.seal")(function* (plaintext: Redacted.Redacted<Uint8Array>, context: SealContext) {
    yield* checkContext(context, "seal_failed")
    const ad = adOf(context)
    return yield* Effect.try({
      try: (): Sealed => {
        const nonce = randomFillSync(new Uint8Array(NONCE_BYTES))
        const ciphertext = lib.crypto_aead_xchacha20poly1305_ietf_encrypt(
          Redacted.value(plaintext),
          ad,
          null,
          nonce,
          Redacted.value(key)
        )
        const bytes = new Uint8Array(HEADER_BYTES + ciphertext.length)
        bytes[0] = VERSION
        bytes.set(nonce, 1)
        bytes.set(ciphertext, HEADER_BYTES)
        return { keyId, bytes }
      },
      // The thrown value is dropped on purpose: nothing from inside the cipher call reaches an error.
      catch: () => new SealError({ reason: "seal_failed", message: `sealing the value for ${where(context)} failed` })
    })
  })

  const open = Effect.fn("Sealer.open")(function* (sealed: Sealed, context: SealContext) {
    if (sealed.keyId !== keyId) {
      return yield* new SealError({
        reason: "key_mismatch",
        message: `the value in ${where(context)} was sealed under key ${sealed.keyId}, but the master key is ${keyId}`
      })
    }
    yield* checkContext(context, "open_failed")
    const bytes = sealed.bytes
    if (bytes.length < HEADER_BYTES + TAG_BYTES || bytes[0] !== VERSION) {
      return yield* new SealError({
        reason: "open_failed",
        message: `the value in ${where(context)} is not a sealed value of a known version`
      })
    }
    const ad = adOf(context)
    const plaintext = yield* Effect.try({
      try: () =>
        lib.crypto_aead_xchacha20poly1305_ietf_decrypt(
          null,
          bytes.subarray(HEADER_BYTES),
          ad,
          bytes.subarray(1, HEADER_BYTES),
          Redacted.value(key)
        ),
      catch: () =>
        new SealError({
          reason: "open_failed",
          message: `the value in ${where(context)} failed authentication: it was modified or belongs to another row`
        })
    })
    return Redacted.make(plaintext)
  })

  return Sealer.of({ keyId, seal, open })
})

/** The sealer for the master key of the `KeyProvider`. */
export const make: Effect.Effect<(typeof Sealer)["Service"], SealError, KeyProvider> = Effect.gen(function* () {
  const provider = yield* KeyProvider
  const masterKey = yield* provider.masterKey
  return yield* fromMasterKey(masterKey)
})

export const layer: Layer.Layer<Sealer, SealError, KeyProvider> = Layer.effect(Sealer, make)

/** Where a store keeps its check value. */
export const checkValueContext: SealContext = { table: "meta", rowId: "key_check" }

const CHECK_PLAINTEXT = encoder.encode("switchboard key check v1")

const keyMismatch = (check: Sealed, keyId: string) =>
  new SealError({
    reason: "key_mismatch",
    message: `the master key does not match this database (${
      check.keyId === keyId
        ? "its check value does not open"
        : `the database expects key ${check.keyId}, the master key is ${keyId}`
    }); check SWITCHBOARD_MASTER_KEY, SWITCHBOARD_PASSPHRASE or the key file`
  })

/** Seals a fixed constant under the sealer's key; a store keeps it to prove, at open, that the key is right. */
export const makeCheckValue = (sealer: (typeof Sealer)["Service"]): Effect.Effect<Sealed, SealError> =>
  sealer.seal(Redacted.make(CHECK_PLAINTEXT), checkValueContext)

/** Succeeds when the check value opens to the constant under the sealer's key, else fails with "key_mismatch". */
export const verifyCheckValue = Effect.fn("Sealer.verifyCheckValue")(function* (
  sealer: (typeof Sealer)["Service"],
  check: Sealed
) {
  const opened = yield* sealer
    .open(check, checkValueContext)
    .pipe(Effect.mapError(() => keyMismatch(check, sealer.keyId)))
  const bytes = Redacted.value(opened)
  const same = bytes.length === CHECK_PLAINTEXT.length && bytes.every((byte, i) => byte === CHECK_PLAINTEXT[i])
  if (!same) return yield* keyMismatch(check, sealer.keyId)
})
