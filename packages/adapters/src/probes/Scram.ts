/**
 * The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) without channel binding (`n,,`), as PostgreSQL and
 * MongoDB speak it, on node:crypto (PBKDF2, HMAC, SHA-256): the first message with a fresh nonce, the final
 * message with the client proof, and the check of the server's signature, so a server that does not know the
 * password cannot pass for one that does. The iteration count a server asks for is bounded: a hostile server
 * must not be able to make a probe burn CPU for minutes.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Crypto from "node:crypto"

export const MECHANISM = "SCRAM-SHA-256"

/** PostgreSQL's default is 4096; RFC 7677 asks for at least 4096; more than this is refused. */
export const MAX_ITERATIONS = 1_000_000

/** `saslname` of RFC 5802: `=` and `,` escaped. */
const saslName = (name: string): string => name.replaceAll("=", "=3D").replaceAll(",", "=2C")

export interface ClientFirst {
  readonly nonce: string
  /** `n=user,r=nonce`: part of the AuthMessage. */
  readonly bare: string
  /** `n,,` + bare: what is sent. */
  readonly message: string
}

/** The client-first message. PostgreSQL ignores the user name here (it has the startup message's). */
export const clientFirst = (user: string, nonce: string = Crypto.randomBytes(18).toString("base64")): ClientFirst => {
  const bare = `n=${saslName(user)},r=${nonce}`
  return { nonce, bare, message: `n,,${bare}` }
}

export interface ServerFirst {
  readonly message: string
  readonly nonce: string
  readonly salt: Buffer
  readonly iterations: number
}

const attributes = (message: string): ReadonlyMap<string, string> => {
  const out = new Map<string, string>()
  for (const part of message.split(",")) {
    const eq = part.indexOf("=")
    if (eq === 1) out.set(part.slice(0, 1), part.slice(2))
  }
  return out
}

/** Parse and check the server-first message: its nonce must extend ours; salt and iterations must be sane. */
export const parseServerFirst = (message: string, clientNonce: string): Result.Result<ServerFirst, string> => {
  const attrs = attributes(message)
  const nonce = attrs.get("r")
  const salt = attrs.get("s")
  const iterations = Number(attrs.get("i"))
  if (attrs.has("e")) return Result.fail(`the server ended the exchange: ${attrs.get("e")}`)
  if (nonce === undefined || salt === undefined || !Number.isInteger(iterations)) {
    return Result.fail("the server's first SCRAM message is malformed")
  }
  if (!nonce.startsWith(clientNonce) || nonce.length === clientNonce.length) {
    return Result.fail("the server's SCRAM nonce does not extend the client's")
  }
  if (iterations < 1 || iterations > MAX_ITERATIONS) {
    return Result.fail(`the server asks for ${iterations} SCRAM iterations (at most ${MAX_ITERATIONS} are done)`)
  }
  return Result.succeed({ message, nonce, salt: Buffer.from(salt, "base64"), iterations })
}

const hmac = (key: Buffer, data: string): Buffer => Crypto.createHmac("sha256", key).update(data).digest()
const sha256 = (data: Buffer): Buffer => Crypto.createHash("sha256").update(data).digest()

export interface ClientFinal {
  /** `c=biws,r=…,p=…`: what is sent. */
  readonly message: string
  /** What the server's final message must carry as `v=`. */
  readonly serverSignature: Buffer
}

/** SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, i), off the event loop. */
export const saltedPassword = (password: string, salt: Buffer, iterations: number): Effect.Effect<Buffer> =>
  Effect.callback<Buffer>((resume) => {
    // SASLprep is approximated by NFKC, which is the identity for the passwords people type.
    Crypto.pbkdf2(password.normalize("NFKC"), salt, iterations, 32, "sha256", (error, key) =>
      resume(error === null ? Effect.succeed(key) : Effect.die(error))
    )
  })

/** The client-final message and the server signature to expect. */
export const clientFinal = (password: string, first: ClientFirst, server: ServerFirst): Effect.Effect<ClientFinal> =>
  Effect.map(saltedPassword(password, server.salt, server.iterations), (salted) => {
    const withoutProof = `c=biws,r=${server.nonce}`
    const authMessage = `${first.bare},${server.message},${withoutProof}`
    const clientKey = hmac(salted, "Client Key")
    const clientSignature = hmac(sha256(clientKey), authMessage)
    const proof = Buffer.alloc(clientKey.length)
    for (let i = 0; i < proof.length; i++) proof[i] = (clientKey[i] ?? 0) ^ (clientSignature[i] ?? 0)
    return {
      message: `${withoutProof},p=${proof.toString("base64")}`,
      serverSignature: hmac(hmac(salted, "Server Key"), authMessage)
    }
  })

/** Check the server-final message (`v=…`, or `e=…` when the server refused). */
export const verifyServerFinal = (message: string, expected: Buffer): Result.Result<void, string> => {
  const attrs = attributes(message)
  const error = attrs.get("e")
  if (error !== undefined) return Result.fail(`the server refused the SCRAM proof: ${error}`)
  const verifier = attrs.get("v")
  if (verifier === undefined) return Result.fail("the server's final SCRAM message is malformed")
  const given = Buffer.from(verifier, "base64")
  return given.length === expected.length && Crypto.timingSafeEqual(given, expected)
    ? Result.succeed(undefined)
    : Result.fail("the server's SCRAM signature is wrong: it does not know the password")
}
