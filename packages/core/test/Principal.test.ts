import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as fc from "fast-check"
import * as Principal from "../src/Principal.ts"

const actions: ReadonlyArray<Principal.Action> = [
  "connector:read",
  "connector:write",
  "credential:read",
  "credential:write",
  "connection:read",
  "connection:write",
  "connection:use",
  "connection:test",
  "audit:read",
  "key:manage"
]
const reads: ReadonlyArray<Principal.Action> = ["connector:read", "credential:read", "connection:read"]
const roles: ReadonlyArray<Principal.Role> = ["admin", "editor", "viewer"]

const users = ["alice", "bob"]
const principal = (role: fc.Arbitrary<Principal.Role> = fc.constantFrom(...roles)): fc.Arbitrary<Principal.Principal> =>
  fc.record({
    org: fc.constantFrom("acme", "local"),
    workspace: fc.constantFrom("default", "eng"),
    user: fc.constantFrom(...users),
    role
  })
const action = fc.constantFrom(...actions)
const resource: fc.Arbitrary<Principal.Resource> = fc.record(
  {
    scope: fc.constantFrom("organization" as const, "workspace" as const, "user" as const),
    owner: fc.constantFrom(...users)
  },
  { requiredKeys: [] }
)

const as = (role: Principal.Role): Principal.Principal => ({ org: "acme", workspace: "default", user: "alice", role })

/** Denied, with a reason that names what was refused. */
const assertDenied = (decision: Principal.Decision, reason?: RegExp): void => {
  assert.isFalse(decision.allowed)
  if (!decision.allowed) {
    assert.isAbove(decision.reason.length, 0)
    if (reason !== undefined) assert.match(decision.reason, reason)
  }
}

describe("Principal", () => {
  describe("authorize", () => {
    it("property: reads are allowed for every role and resource", () => {
      fc.assert(
        fc.property(principal(), fc.constantFrom(...reads), resource, (p, a, r) => {
          assert.deepStrictEqual(Principal.authorize(p, a, r), { allowed: true })
        })
      )
    })

    it("property: viewers are denied every action that is not a read", () => {
      fc.assert(
        fc.property(principal(fc.constant("viewer")), action, resource, (p, a, r) => {
          fc.pre(!reads.includes(a))
          assertDenied(Principal.authorize(p, a, r), new RegExp(a))
        })
      )
    })

    it("property: admins are allowed everything", () => {
      fc.assert(
        fc.property(principal(fc.constant("admin")), action, resource, (p, a, r) => {
          assert.deepStrictEqual(Principal.authorize(p, a, r), { allowed: true })
        })
      )
    })

    it("property: editors are denied audit:read, key:manage and organization credential:write", () => {
      fc.assert(
        fc.property(principal(fc.constant("editor")), resource, (p, r) => {
          assertDenied(Principal.authorize(p, "audit:read", r), /admin/)
          assertDenied(Principal.authorize(p, "key:manage", r), /admin/)
          assertDenied(Principal.authorize(p, "credential:write", { ...r, scope: "organization" }), /admins/)
        })
      )
    })

    it("property: editors may write workspace credentials and their own user credentials, not another user's", () => {
      fc.assert(
        fc.property(principal(fc.constant("editor")), (p) => {
          assert.isTrue(Principal.authorize(p, "credential:write", { scope: "workspace" }).allowed)
          assert.isTrue(Principal.authorize(p, "credential:write", { scope: "user" }).allowed)
          assert.isTrue(Principal.authorize(p, "credential:write", { scope: "user", owner: p.user }).allowed)
          const other = users.find((u) => u !== p.user) as string
          assertDenied(Principal.authorize(p, "credential:write", { scope: "user", owner: other }), /owner/)
        })
      )
    })

    it("property: editors may do everything else", () => {
      fc.assert(
        fc.property(principal(fc.constant("editor")), action, (p, a) => {
          fc.pre(a !== "audit:read" && a !== "key:manage" && a !== "credential:write")
          assert.isTrue(Principal.authorize(p, a).allowed)
        })
      )
    })

    it("property: a role's permissions are a subset of every higher role's", () => {
      fc.assert(
        fc.property(principal(), action, resource, (p, a, r) => {
          const allowed = (role: Principal.Role) => Principal.authorize({ ...p, role }, a, r).allowed
          if (allowed("viewer")) assert.isTrue(allowed("editor"))
          if (allowed("editor")) assert.isTrue(allowed("admin"))
        })
      )
    })

    describe("matches the seed roles table", () => {
      const table: ReadonlyArray<{
        readonly endpoint: string
        readonly action: Principal.Action
        readonly allowed: ReadonlyArray<Principal.Role>
      }> = [
        { endpoint: "GET /connectors", action: "connector:read", allowed: ["admin", "editor", "viewer"] },
        { endpoint: "POST /connectors", action: "connector:write", allowed: ["admin", "editor"] },
        { endpoint: "PUT /connectors", action: "connector:write", allowed: ["admin", "editor"] },
        { endpoint: "DELETE /connectors", action: "connector:write", allowed: ["admin", "editor"] },
        { endpoint: "POST /connectors/test", action: "connection:test", allowed: ["admin", "editor"] }
      ]
      it.each(table)("$endpoint", ({ action, allowed }) => {
        for (const role of roles) {
          assert.strictEqual(Principal.authorize(as(role), action).allowed, allowed.includes(role), `${role} ${action}`)
        }
      })
    })
  })

  describe("Principal schema", () => {
    it("accepts identifiers and refuses path-like or empty segments", () => {
      const is = Schema.is(Principal.Principal)
      assert.isTrue(is({ org: "acme", workspace: "default", user: "alice@example.com", role: "editor" }))
      assert.isFalse(is({ org: "", workspace: "default", user: "alice", role: "editor" }))
      assert.isFalse(is({ org: "acme", workspace: "../x", user: "alice", role: "editor" }))
      assert.isFalse(is({ org: "acme", workspace: "default", user: "alice", role: "owner" }))
    })

    it.effect("the current principal defaults to the local admin", () =>
      Effect.gen(function* () {
        const current = yield* Principal.CurrentPrincipal
        assert.deepStrictEqual(current, { org: "local", workspace: "default", user: "local", role: "admin" })
        assert.deepStrictEqual(Principal.local("me"), { org: "local", workspace: "default", user: "me", role: "admin" })
      })
    )
  })
})
