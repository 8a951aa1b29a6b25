/**
 * libsodium adapter of the `Sealer` port: XChaCha20-Poly1305 (IETF AEAD) with a fresh random 24-byte nonce per
 * seal, drawn from node's CSPRNG (`crypto.randomFillSync`, the same source libsodium's WebAssembly build reads
 * four bytes per call into JavaScript, which made it most of the cost of a seal; here 128 nonces per call, each
 * used once). Sealed bytes are `version (1 byte) || nonce (24) || ciphertext and tag`. The associated data binds
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

/** Parts joined unambiguously: each as a 4-byte big-endian length followed by its bytes (also `Bundle.ts`). */
export const frame = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
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

/** Row contexts whose associated data is kept (per key), so re-opening the same rows encodes nothing. */
const AD_CACHE = 4096

/**
 * `associatedData` for one key id, with the parts that repeat (domain, key id, the few table names) encoded
 * once, and the whole associated data of the last `AD_CACHE` contexts kept (encoding it cost as much as the
 * cipher). The same bytes as `associatedData`; a context with a lone surrogate is refused, never kept.
 */
const associatedDataFor = (
  keyId: string,
  reason: "seal_failed" | "open_failed"
): ((context: SealContext) => Uint8Array | SealError) => {
  const keyIdBytes = encoder.encode(keyId)
  const tables = new Map<string, { readonly bytes: Uint8Array; readonly rows: Map<string, Uint8Array> }>()
  let kept = 0
  return (context) => {
    let table = tables.get(context.table)
    const hit = table?.rows.get(context.rowId)
    if (hit !== undefined) return hit
    const refused = badContext(context, reason)
    if (refused !== undefined) return refused
    if (table === undefined) {
      table = { bytes: encoder.encode(context.table), rows: new Map() }
      if (tables.size < 64) tables.set(context.table, table)
    }
    const ad = frame([DOMAIN_BYTES, table.bytes, encoder.encode(context.rowId), keyIdBytes])
    if (kept >= AD_CACHE) {
      for (const t of tables.values()) t.rows.clear()
      kept = 0
    }
    table.rows.set(context.rowId, ad)
    kept++
    return ad
  }
}

/**
 * Nonces from node's CSPRNG, drawn `NONCE_POOL` at a time (one call into the CSPRNG cost a third of a seal) and
 * handed out once each, as node's own `randomUUID` does. The pool is only ever read forwards.
 */
const NONCE_POOL = 128
const nonces = (() => {
  const pool = new Uint8Array(NONCE_BYTES * NONCE_POOL)
  let next = pool.length
  return (): Uint8Array => {
    if (next === pool.length) {
      randomFillSync(pool)
      next = 0
    }
    const nonce = pool.subarray(next, next + NONCE_BYTES)
    next += NONCE_BYTES
    return nonce
  }
})()

// UTF-8 maps every lone surrogate to U+FFFD, so two such contexts would share associated data: refuse them.
const badContext = (context: SealContext, reason: "seal_failed" | "open_failed"): SealError | undefined =>
  LONE_SURROGATE.test(context.table) || LONE_SURROGATE.test(context.rowId)
    ? new SealError({ reason, message: "the table or row id of a sealed value is not valid Unicode" })
    : undefined

const where = (context: SealContext) => `${context.table} row ${context.rowId}`

/** Builds the sealer for one master key (key rotation opens with the old key and seals with the new one). */
export const fromMasterKey = Effect.fn("Sealer.fromMasterKey")(function* (masterKey: MasterKey) {
  const lib = yield* load("seal_failed")
  const key = masterKey.key
  if (Redacted.value(key).length !== KEY_BYTES) {
    return yield* new SealError({ reason: "key_invalid", message: `the master key must be ${KEY_BYTES} bytes` })
  }
  const keyId = masterKey.id
  const sealAd = associatedDataFor(keyId, "seal_failed")
  const openAd = associatedDataFor(keyId, "open_failed")

  // Hot paths (every credential resolve opens one): plain functions returning one suspended Effect, not
  // `Effect.fn` (whose span and call-site capture cost more than the cipher) nor a chain of `yield*`s.
  const seal = (plaintext: Redacted.Redacted<Uint8Array>, context: SealContext): Effect.Effect<Sealed, SealError> =>
    Effect.suspend(() => {
      const ad = sealAd(context)
      if (ad instanceof SealError) return Effect.fail(ad)
      try {
        const nonce = nonces()
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
        return Effect.succeed({ keyId, bytes })
      } catch {
        // The thrown value is dropped on purpose: nothing from inside the cipher call reaches an error.
        return Effect.fail(
          new SealError({ reason: "seal_failed", message: `sealing the value for ${where(context)} failed` })
        )
      }
    })

  const open = (sealed: Sealed, context: SealContext): Effect.Effect<Redacted.Redacted<Uint8Array>, SealError> =>
    Effect.suspend(() => {
      if (sealed.keyId !== keyId) {
        return Effect.fail(
          new SealError({
            reason: "key_mismatch",
            message: `the value in ${where(context)} was sealed under key ${sealed.keyId}, but the master key is ${keyId}`
          })
        )
      }
      const ad = openAd(context)
      if (ad instanceof SealError) return Effect.fail(ad)
      const bytes = sealed.bytes
      if (bytes.length < HEADER_BYTES + TAG_BYTES || bytes[0] !== VERSION) {
        return Effect.fail(
          new SealError({
            reason: "open_failed",
            message: `the value in ${where(context)} is not a sealed value of a known version`
          })
        )
      }
      try {
        return Effect.succeed(
          Redacted.make(
            lib.crypto_aead_xchacha20poly1305_ietf_decrypt(
              null,
              bytes.subarray(HEADER_BYTES),
              ad,
              bytes.subarray(1, HEADER_BYTES),
              Redacted.value(key)
            )
          )
        )
      } catch {
        return Effect.fail(
          new SealError({
            reason: "open_failed",
            message: `the value in ${where(context)} failed authentication: it was modified or belongs to another row`
          })
        )
      }
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
