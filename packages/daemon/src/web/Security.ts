/**
 * What keeps other local users and other origins from driving the pages. The daemon makes a random secret at each
 * start; the URL it prints carries it as `?k=…`, the first visit trades it for an HttpOnly, SameSite=Strict cookie,
 * and every request after needs that cookie. Every form carries a CSRF token derived from the secret (HMAC), and
 * POSTs also need a same-origin `Origin` when the browser sends one. The `Host` check against DNS rebinding is the
 * listener's (`OAuthRoutes.hostAllowed`). Browsers send a 127.0.0.1 cookie to every port of 127.0.0.1, so a page
 * another local user serves there could read it: the cookie only lives for this start, and the secret never
 * leaves the machine.
 */
import * as Crypto from "node:crypto"

/**
 * The session cookie's name, per port: cookies do not separate ports, so two daemons on one machine (two users)
 * must not overwrite each other's session.
 */
export const cookieName = (port: number) => `sb_session_${port}`
export const secretParam = "k"
export const csrfField = "csrf"

/** The secrets of one daemon start. */
export interface Keys {
  readonly secret: string
  readonly csrf: string
}

/** Fresh keys: a 32-byte random secret and the CSRF token derived from it. */
export const makeKeys = (secret: string = Crypto.randomBytes(32).toString("base64url")): Keys => ({
  secret,
  csrf: Crypto.createHmac("sha256", secret).update("switchboard-csrf").digest("base64url")
})

/** Whether a `Host` header names this listener (127.0.0.1, localhost or [::1], with its port). */
export const hostAllowed = (host: string | undefined, port: number): boolean =>
  host !== undefined && [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`].includes(host.toLowerCase())

/** Constant-time comparison of two strings. */
export const same = (a: string | undefined, b: string): boolean => {
  if (a === undefined) return false
  const left = Buffer.from(a)
  const right = Buffer.from(b)
  return left.length === right.length && Crypto.timingSafeEqual(left, right)
}

/** The session cookie's `Set-Cookie` value. */
export const sessionCookie = (keys: Keys, port: number): string =>
  `${cookieName(port)}=${keys.secret}; Path=/; HttpOnly; SameSite=Strict`

/** Whether a POST may act: the CSRF token matches and the `Origin`, when sent, is this listener's. */
export const formAllowed = (keys: Keys, token: string | undefined, origin: string | undefined, own: string) =>
  same(token, keys.csrf) && (origin === undefined || origin === own || origin.replace("localhost", "127.0.0.1") === own)
