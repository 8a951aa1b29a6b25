/**
 * The sealed-bundle envelope, with libsodium. A machine's bundle recipient is an X25519 key pair; its secret half
 * is kept by the store sealed under the master key (`BundleStore.recipientSecret`), its public half is shared as
 * text (`sbrk1_` + base64url of the 32-byte key and a 4-byte checksum, so a mistyped key is refused rather than
 * sealed to).
 *
 * A bundle is a small JSON envelope: the format and its version, the recipient's fingerprint (so the wrong machine
 * says so before trying anything), a fresh random 32-byte key sealed to the recipient (`crypto_box_seal`: an
 * ephemeral X25519 key, anonymous sender) and the contents' JSON encrypted under that key with XChaCha20-Poly1305
 * (IETF AEAD), whose associated data binds the format, version, fingerprint and sealed key: no byte of the envelope
 * can change without the open failing. Nothing in it is readable without the recipient's secret key.
 */
import * as Bundle from "@switchboard/core/Bundle"
import type { SealError } from "@switchboard/core/Errors"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { randomFillSync } from "node:crypto"
import { load, type Sodium } from "./internal/sodium.ts"
import { frame } from "./Sealer.ts"

/** What the envelope says it is. */
export const FORMAT = "switchboard-bundle"
/** The envelope's version. */
export const VERSION = 1

const RECIPIENT_PREFIX = "sbrk1_"
const KEY_BYTES = 32
const CHECKSUM_BYTES = 4
const NONCE_BYTES = 24
const DOMAIN = `switchboard:bundle:v${VERSION}`
const FINGERPRINT_CONTEXT = "switchboard:bundle-recipient:v1"
const CHECKSUM_CONTEXT = "switchboard:bundle-recipient-check:v1"

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true })

/** A recipient: the public key, its text and fingerprint, and (for this machine's own) the secret key. */
export interface Recipient {
  readonly publicKey: Uint8Array
  /** `sbrk1_…`: what `switchboard key recipient` prints and `export --to` takes. */
  readonly text: string
  /** A short public fingerprint of the key (hex), written into every bundle sealed to it. */
  readonly fingerprint: string
}

export interface OwnRecipient extends Recipient {
  readonly secretKey: Redacted.Redacted<Uint8Array>
}

const fail = (reason: Bundle.BundleError["reason"], message: string, details?: unknown) =>
  new Bundle.BundleError({ reason, message, ...(details === undefined ? {} : { details }) })

const loaded = load("seal_failed").pipe(Effect.mapError(() => fail("bundle_invalid", "libsodium failed to initialise")))

const hashOf = (lib: Sodium, bytes: Uint8Array, context: string, length: number) =>
  lib.crypto_generichash(16, bytes, lib.from_string(context)).subarray(0, length)

const recipientOf = (lib: Sodium, publicKey: Uint8Array): Recipient => {
  const checksum = hashOf(lib, publicKey, CHECKSUM_CONTEXT, CHECKSUM_BYTES)
  const both = new Uint8Array(KEY_BYTES + CHECKSUM_BYTES)
  both.set(publicKey)
  both.set(checksum, KEY_BYTES)
  return {
    publicKey,
    text: RECIPIENT_PREFIX + Buffer.from(both).toString("base64url"),
    fingerprint: lib.to_hex(hashOf(lib, publicKey, FINGERPRINT_CONTEXT, 8))
  }
}

/** Parses a recipient's text (`sbrk1_…`), checking its checksum. */
export const parseRecipient = Effect.fn("Bundle.parseRecipient")(function* (text: string) {
  const lib = yield* loaded
  const trimmed = text.trim()
  const invalid = fail(
    "bundle_recipient_invalid",
    `a recipient key is ${RECIPIENT_PREFIX} followed by 48 base64url characters (what switchboard key recipient ` +
      "prints on the receiving machine); this one is not, or was mistyped"
  )
  if (!trimmed.startsWith(RECIPIENT_PREFIX)) return yield* invalid
  const body = trimmed.slice(RECIPIENT_PREFIX.length)
  if (!/^[A-Za-z0-9_-]{48}$/u.test(body)) return yield* invalid
  const bytes = new Uint8Array(Buffer.from(body, "base64url"))
  const publicKey = bytes.slice(0, KEY_BYTES)
  const expected = hashOf(lib, publicKey, CHECKSUM_CONTEXT, CHECKSUM_BYTES)
  if (!lib.memcmp(expected, bytes.subarray(KEY_BYTES))) return yield* invalid
  return recipientOf(lib, publicKey)
})

/** A new recipient secret key (X25519), from libsodium's CSPRNG. */
export const generateSecret: Effect.Effect<Redacted.Redacted<Uint8Array>, SealError> = Effect.map(
  load("seal_failed"),
  (lib) => {
    const pair = lib.crypto_box_keypair()
    pair.publicKey.fill(0)
    return Redacted.make(pair.privateKey)
  }
)

/** This machine's recipient: the store's secret (made on first use) and the public key derived from it. */
export const ownRecipient = Effect.fn("Bundle.ownRecipient")(function* (store: Bundle.BundleStore["Service"]) {
  const secretKey = yield* store.recipientSecret(generateSecret)
  const lib = yield* load("open_failed")
  const publicKey = lib.crypto_scalarmult_base(Redacted.value(secretKey))
  return { ...recipientOf(lib, publicKey), secretKey } satisfies OwnRecipient
})

/** The envelope as written to the file. */
export const Envelope = Schema.Struct({
  format: Schema.Literal(FORMAT),
  version: Schema.Int,
  recipient: Schema.String,
  sealed_key: Schema.String,
  nonce: Schema.String,
  ciphertext: Schema.String
})
export type Envelope = typeof Envelope.Type

const associatedData = (fingerprint: string, sealedKey: Uint8Array) =>
  frame([encoder.encode(DOMAIN), encoder.encode(FORMAT), encoder.encode(fingerprint), sealedKey])

const b64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64")

/**
 * Seals `contents` to `recipient`: the envelope's JSON text. The plaintext and the content key are zeroed once
 * sealed.
 */
export const seal = Effect.fn("Bundle.seal")(function* (contents: Bundle.Contents, recipient: Recipient) {
  const lib = yield* loaded
  const json = yield* Schema.encodeEffect(Bundle.ContentsJson)(contents).pipe(
    Effect.mapError(() => fail("bundle_invalid", "the bundle's contents are not valid"))
  )
  const plaintext = encoder.encode(JSON.stringify(json))
  const key = randomFillSync(new Uint8Array(KEY_BYTES))
  try {
    const sealedKey = lib.crypto_box_seal(key, recipient.publicKey)
    const nonce = randomFillSync(new Uint8Array(NONCE_BYTES))
    const ciphertext = lib.crypto_aead_xchacha20poly1305_ietf_encrypt(
      plaintext,
      associatedData(recipient.fingerprint, sealedKey),
      null,
      nonce,
      key
    )
    const envelope: Envelope = {
      format: FORMAT,
      version: VERSION,
      recipient: recipient.fingerprint,
      sealed_key: b64(sealedKey),
      nonce: b64(nonce),
      ciphertext: b64(ciphertext)
    }
    return `${JSON.stringify(envelope, null, 2)}\n`
  } finally {
    plaintext.fill(0)
    key.fill(0)
  }
})

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/u

const bytesOf = (text: string, what: string) =>
  BASE64.test(text) && text.length % 4 === 0
    ? Effect.succeed(new Uint8Array(Buffer.from(text, "base64")))
    : Effect.fail(fail("bundle_tampered", `the bundle's ${what} is not base64: the file was modified`))

const tampered = (what: string) =>
  fail("bundle_tampered", `the bundle failed authentication (${what}): it was modified after it was sealed`)

/**
 * Opens a bundle's text with this machine's recipient: checks the format and the recipient fingerprint first, then
 * authenticates and decrypts, then decodes the contents. Every failure is a `BundleError`; none quotes the contents.
 */
export const open = Effect.fn("Bundle.open")(function* (text: string, recipient: OwnRecipient) {
  const lib = yield* loaded
  const json = Result.try((): unknown => JSON.parse(text))
  if (Result.isFailure(json)) {
    return yield* fail("bundle_invalid", "this is not a Switchboard bundle (not JSON): it was truncated or modified")
  }
  const head = json.success as { readonly format?: unknown; readonly version?: unknown } | null
  if (typeof head !== "object" || head === null || head.format !== FORMAT) {
    return yield* fail("bundle_invalid", `this is not a Switchboard bundle (no "format": "${FORMAT}")`)
  }
  if (head.version !== VERSION) {
    return yield* fail(
      "bundle_unsupported_version",
      `the bundle's format version is ${String(head.version)}; this Switchboard reads version ${VERSION}`
    )
  }
  const envelope = yield* Schema.decodeUnknownEffect(Envelope)(head).pipe(
    Effect.mapError(() => fail("bundle_invalid", "the bundle's envelope is incomplete: it was truncated or modified"))
  )
  if (envelope.recipient !== recipient.fingerprint) {
    return yield* fail(
      "bundle_wrong_recipient",
      `the bundle is sealed to recipient ${envelope.recipient}, not to this machine (${recipient.fingerprint}): ` +
        "export it again with --to set to what switchboard key recipient prints here",
      { bundle_recipient: envelope.recipient, this_recipient: recipient.fingerprint }
    )
  }
  const sealedKey = yield* bytesOf(envelope.sealed_key, "sealed key")
  const nonce = yield* bytesOf(envelope.nonce, "nonce")
  const ciphertext = yield* bytesOf(envelope.ciphertext, "ciphertext")
  if (nonce.length !== NONCE_BYTES) return yield* tampered("nonce")
  const key = yield* Effect.try({
    try: () => lib.crypto_box_seal_open(sealedKey, recipient.publicKey, Redacted.value(recipient.secretKey)),
    catch: () => tampered("sealed key")
  })
  const plaintext = yield* Effect.try({
    try: () =>
      lib.crypto_aead_xchacha20poly1305_ietf_decrypt(
        null,
        ciphertext,
        associatedData(envelope.recipient, sealedKey),
        nonce,
        key
      ),
    catch: () => tampered("contents")
  }).pipe(Effect.ensuring(Effect.sync(() => key.fill(0))))
  const decoded = Result.try((): unknown => JSON.parse(decoder.decode(plaintext))).pipe(
    Result.flatMap((value) => Schema.decodeUnknownResult(Bundle.ContentsJson)(value))
  )
  plaintext.fill(0)
  if (Result.isFailure(decoded)) {
    // The parser's and the schema's messages could quote a secret: neither is passed on.
    return yield* fail("bundle_invalid", "the bundle opened, but its contents are not in the expected form")
  }
  return decoded.success
})
