import { assert, describe, it } from "@effect/vitest"
import * as Security from "../../src/web/Security.ts"

describe("Security", () => {
  it("makes a fresh random secret per start, and a CSRF token bound to it", () => {
    const a = Security.makeKeys()
    const b = Security.makeKeys()
    assert.notStrictEqual(a.secret, b.secret)
    assert.notStrictEqual(a.csrf, b.csrf)
    assert.match(a.secret, /^[\w-]{43}$/u)
    assert.deepStrictEqual(Security.makeKeys("s"), Security.makeKeys("s"))
    assert.notStrictEqual(Security.makeKeys("s").csrf, "s")
  })

  it("compares secrets in constant time, and names the session cookie per port", () => {
    const keys = Security.makeKeys("secret-1")
    assert.isTrue(Security.same("secret-1", keys.secret))
    assert.isFalse(Security.same(undefined, keys.secret))
    assert.isFalse(Security.same("secret-", keys.secret))
    assert.isFalse(Security.same("secret-2", keys.secret))
    assert.match(Security.sessionCookie(keys, 4000), /^sb_session_4000=secret-1; Path=\/; HttpOnly; SameSite=Strict$/u)
  })

  it("allows a form with the CSRF token from its own origin (or none sent) only", () => {
    const keys = Security.makeKeys("secret-1")
    const own = "http://127.0.0.1:4000"
    assert.isTrue(Security.formAllowed(keys, keys.csrf, own, own))
    assert.isTrue(Security.formAllowed(keys, keys.csrf, undefined, own))
    assert.isTrue(Security.formAllowed(keys, keys.csrf, "http://localhost:4000", own))
    assert.isFalse(Security.formAllowed(keys, undefined, own, own))
    assert.isFalse(Security.formAllowed(keys, "x", own, own))
    assert.isFalse(Security.formAllowed(keys, keys.csrf, "http://evil.example", own))
    assert.isFalse(Security.formAllowed(keys, keys.csrf, "null", own))
  })

  it("checks the Host against DNS rebinding", () => {
    assert.isTrue(Security.hostAllowed("127.0.0.1:4000", 4000))
    assert.isTrue(Security.hostAllowed("LOCALHOST:4000", 4000))
    assert.isTrue(Security.hostAllowed("[::1]:4000", 4000))
    assert.isFalse(Security.hostAllowed("127.0.0.1", 4000))
    assert.isFalse(Security.hostAllowed("127.0.0.1:4001", 4000))
    assert.isFalse(Security.hostAllowed("evil.example:4000", 4000))
    assert.isFalse(Security.hostAllowed(undefined, 4000))
  })
})
