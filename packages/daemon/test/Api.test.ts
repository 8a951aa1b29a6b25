/**
 * The REST API in process: the server on a temporary Unix socket over the memory store, every endpoint through
 * the typed client and through raw HTTP (what curl sends), each error class in the one error shape, and a
 * canary secret planted in credentials, inline security and headers that no response body or header carries.
 */
import { assert, describe, layer } from "@effect/vitest"
import * as Api from "@switchboard/core/Api"
import * as Effect from "effect/Effect"
import { OpenApi } from "effect/http-api"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll } from "vitest"
import * as Client from "../src/Client.ts"
import {
  apiKeyConnector,
  editorHeaders,
  recorder,
  responseTexts,
  serverLayer,
  tempDir,
  viewerHeaders
} from "./support.ts"

const CANARY = "CANARY-d41e-SECRET-7f3a"
const CANARY_HEADER = "CANARY-HDR-0b9c-SECRET"
const fragments = [CANARY, CANARY_HEADER, "d41e-SECRET", "0b9c-SECRET"]

const dir = tempDir()
const socket = Path.join(dir, "run", "switchboard.sock")
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

const raw = recorder(socket)
const typedSeen: Array<unknown> = []
const keep = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.exit(effect).pipe(
    Effect.tap((exit) => Effect.sync(() => typedSeen.push(exit))),
    Effect.flatten
  )

const issuesOf = (body: any): Array<{ path: string; message: string }> => body?.error?.details?.issues ?? []

const assertErrorShape = (body: any, code: string) => {
  assert.isObject(body?.error, JSON.stringify(body))
  assert.strictEqual(body.error.code, code, JSON.stringify(body))
  assert.isString(body.error.message)
  assert.deepStrictEqual(
    Object.keys(body).filter((k) => k !== "error"),
    []
  )
}

layer(Layer.merge(serverLayer(socket), Client.layer(socket)), { excludeTestServices: true })(
  "daemon REST API",
  (it) => {
    it.effect("healthz and openapi.json", () =>
      Effect.gen(function* () {
        const client = yield* Client.DaemonClient
        const health = yield* keep(client.health())
        assert.strictEqual(health.ok, true)
        assert.strictEqual(health.pid, process.pid)
        const res = yield* raw.request("GET", "/openapi.json")
        assert.strictEqual(res.status, 200)
        assert.deepStrictEqual(res.json, JSON.parse(JSON.stringify(OpenApi.fromApi(Api.Api))))
        assert.isDefined(res.json.paths["/v1/connectors/{id_or_name}/{scope}/credentials"].post)
        // Request bodies are documented with the domain schemas, unknown keys refused.
        const body = res.json.paths["/v1/connectors"].post.requestBody.content["application/json"].schema
        assert.strictEqual(body.additionalProperties, false)
        assert.isDefined(body.properties.auth_patterns)
      })
    )

    it.effect("connectors: create, get by id or name, list with filters and cursor, update, versions, delete", () =>
      Effect.gen(function* () {
        const client = yield* Client.DaemonClient
        const created = yield* keep(client.connectors.create({ payload: { ...apiKeyConnector, name: "conn-a" } }))
        assert.match(created.id, /^ctr_/)
        assert.strictEqual(created.version, 1)
        const viaRaw = yield* raw.json("POST", "/v1/connectors", { ...apiKeyConnector, name: "conn-b" })
        assert.strictEqual(viaRaw.status, 201)
        assert.strictEqual(viaRaw.json.name, "conn-b")
        yield* raw.json("POST", "/v1/connectors", {
          name: "conn-pg",
          kind: "postgresql",
          config: { host: "db", port: 5432, database: "x" }
        })

        assert.deepStrictEqual(yield* keep(client.connectors.get({ params: { id_or_name: "conn-a" } })), created)
        assert.deepStrictEqual(yield* keep(client.connectors.get({ params: { id_or_name: created.id } })), created)

        const first = yield* keep(client.connectors.list({ query: { limit: 1, name_prefix: "conn-" } }))
        assert.strictEqual(first.data.length, 1)
        assert.strictEqual(first.has_more, true)
        const second = yield* raw.request(
          "GET",
          `/v1/connectors?limit=1&name_prefix=conn-&cursor=${encodeURIComponent(first.next_cursor ?? "")}`
        )
        assert.strictEqual(second.status, 200)
        assert.notStrictEqual(second.json.data[0].id, first.data[0]?.id)
        const pg = yield* keep(client.connectors.list({ query: { kind: "postgresql" } }))
        assert.deepStrictEqual(
          pg.data.map((c) => c.name),
          ["conn-pg"]
        )

        const v2 = yield* keep(
          client.connectors.update({ params: { id: created.id }, payload: { description: "second version" } })
        )
        assert.strictEqual(v2.version, 2)
        const patched = yield* raw.json("PATCH", "/v1/connectors/conn-a", { description: "third" })
        assert.strictEqual(patched.status, 200)
        assert.strictEqual(patched.json.version, 3)
        const v1 = yield* keep(client.connectors.getVersion({ params: { id_or_name: "conn-a", version: 1 } }))
        assert.deepStrictEqual(v1, created)
        const noVersion = yield* raw.request("GET", "/v1/connectors/conn-a/versions/9")
        assert.strictEqual(noVersion.status, 404)
        assertErrorShape(noVersion.json, "connector_version_not_found")

        const methods = yield* keep(client.connectors.authenticationMethods({ params: { id_or_name: "conn-a" } }))
        assert.strictEqual(methods.metadata[0]?.authenticationType, "API_KEY")

        const removed = yield* raw.request("DELETE", "/v1/connectors/conn-b")
        assert.strictEqual(removed.status, 204)
        assert.strictEqual(removed.text, "")
        yield* keep(client.connectors.remove({ params: { id: "conn-pg" } }))
        const gone = yield* raw.request("GET", "/v1/connectors/conn-b")
        assert.strictEqual(gone.status, 404)
        assertErrorShape(gone.json, "connector_not_found")
      })
    )

    it.effect("credentials per scope: set (values masked), list, delete; secrets never come back", () =>
      Effect.gen(function* () {
        const client = yield* Client.DaemonClient
        yield* keep(client.connectors.create({ payload: { ...apiKeyConnector, name: "cred-api" } }))
        const set = yield* raw.json("POST", "/v1/connectors/cred-api/user/credentials", {
          values: { api_key: CANARY, domain: "api.cred.test" }
        })
        assert.strictEqual(set.status, 200)
        assert.strictEqual(set.json.scope, "user")
        assert.strictEqual(set.json.owner.user, "tester")
        assert.strictEqual(set.json.values.api_key, "CA***3a")
        const org = yield* keep(
          client.credentials.set({
            params: { id_or_name: "cred-api", scope: "organization" },
            payload: { name: "shared", auth_type: "API_KEY", values: { api_key: CANARY, domain: "o.test" } }
          })
        )
        assert.strictEqual(org.name, "shared")
        const list = yield* keep(client.credentials.list({ params: { id_or_name: "cred-api", scope: "organization" } }))
        assert.deepStrictEqual(
          list.data.map((c) => c.name),
          ["shared"]
        )
        const rawList = yield* raw.request("GET", "/v1/connectors/cred-api/user/credentials")
        assert.strictEqual(rawList.json.data.length, 1)
        const badField = yield* raw.json("POST", "/v1/connectors/cred-api/workspace/credentials", {
          values: { apikey: CANARY, domain: "d.test" }
        })
        assert.strictEqual(badField.status, 422)
        assertErrorShape(badField.json, "validation_failed")
        assert.includeMembers(
          issuesOf(badField.json).map((i) => i.path),
          ["values.apikey", "values.api_key"]
        )
        const deleted = yield* raw.request("DELETE", "/v1/connectors/cred-api/user/credentials/default")
        assert.strictEqual(deleted.status, 204)
        const again = yield* raw.request("DELETE", "/v1/connectors/cred-api/user/credentials/default")
        assert.strictEqual(again.status, 404)
        assertErrorShape(again.json, "credential_not_found")
        const badScope = yield* raw.request("GET", "/v1/connectors/cred-api/team/credentials")
        assert.strictEqual(badScope.status, 404)
        assertErrorShape(badScope.json, "route_not_found")
      })
    )

    it.effect("connections: create 201 with write-only security and headers, list with filters, get, delete", () =>
      Effect.gen(function* () {
        const client = yield* Client.DaemonClient
        yield* keep(client.connectors.create({ payload: { ...apiKeyConnector, name: "conn-api" } }))
        const created = yield* raw.json("POST", "/v1/connectors/conn-api/connections", {
          name: "Prod",
          security: { api_key: CANARY, domain: "api.conn.test" },
          headers: { "X-Canary": CANARY_HEADER },
          parameters: { query: { per_page: "100" } }
        })
        assert.strictEqual(created.status, 201)
        assert.strictEqual(created.json.has_security, true)
        assert.deepStrictEqual(created.json.header_names, ["X-Canary"])
        assert.notProperty(created.json, "security")
        const typed = yield* keep(
          client.connections.create({
            params: { id_or_name: "conn-api" },
            payload: { name: "Staging", access_scope: "organizational" }
          })
        )
        assert.strictEqual(typed.status, "pending_auth")
        const byConnector = yield* keep(client.connections.list({ query: { connector: "conn-api" } }))
        assert.sameMembers(
          byConnector.data.map((c) => c.name),
          ["Prod", "Staging"]
        )
        const pending = yield* raw.request("GET", "/v1/connections?status=pending_auth&connector=conn-api")
        assert.deepStrictEqual(
          pending.json.data.map((c: { name: string }) => c.name),
          ["Staging"]
        )
        const byName = yield* raw.request("GET", "/v1/connections/Prod")
        assert.strictEqual(byName.json.id, created.json.id)
        assert.strictEqual((yield* keep(client.connections.get({ params: { id: created.json.id } }))).name, "Prod")

        // Names with spaces travel percent-encoded, through raw HTTP and the typed client.
        const spaced = yield* raw.json("POST", "/v1/connectors/conn-api/connections", { name: "Support desk" })
        assert.strictEqual(spaced.status, 201)
        assert.strictEqual((yield* raw.request("GET", "/v1/connections/Support%20desk")).json.id, spaced.json.id)
        assert.strictEqual((yield* keep(client.connections.get({ params: { id: "Support desk" } }))).id, spaced.json.id)
        yield* keep(client.connections.remove({ params: { id: "Support desk" } }))

        const inUse = yield* raw.request("DELETE", "/v1/connectors/conn-api")
        assert.strictEqual(inUse.status, 409)
        assertErrorShape(inUse.json, "connector_in_use")

        assert.strictEqual((yield* raw.request("DELETE", `/v1/connections/${created.json.id}`)).status, 204)
        yield* keep(client.connections.remove({ params: { id: typed.id } }))
        const gone = yield* raw.request("GET", `/v1/connections/${typed.id}`)
        assert.strictEqual(gone.status, 404)
        assertErrorShape(gone.json, "connection_not_found")
        assert.strictEqual((yield* raw.request("DELETE", "/v1/connectors/conn-api")).status, 204)
      })
    )

    it.effect("audit: admins read it newest first, paginated; viewers are refused", () =>
      Effect.gen(function* () {
        const client = yield* Client.DaemonClient
        const page = yield* keep(client.audit.list({ query: { limit: 2 } }))
        assert.strictEqual(page.data.length, 2)
        assert.isString(page.next_cursor)
        const next = yield* raw.request("GET", `/v1/audit?limit=2&cursor=${encodeURIComponent(page.next_cursor ?? "")}`)
        assert.strictEqual(next.status, 200)
        // Newest first: ids (time-sortable) go down across pages.
        assert.isTrue(next.json.data[0].id < (page.data[1]?.id ?? ""))
        const filtered = yield* raw.request("GET", "/v1/audit?action=connector.create&limit=100")
        assert.isTrue(filtered.json.data.every((r: { action: string }) => r.action === "connector.create"))
        const denied = yield* raw.request("GET", "/v1/audit", { headers: viewerHeaders })
        assert.strictEqual(denied.status, 403)
        assertErrorShape(denied.json, "forbidden")
      })
    )

    it.effect("400: a tampered cursor, a cursor reused with other filters, a bad trusted header", () =>
      Effect.gen(function* () {
        for (const name of ["page-1", "page-2", "page-3"]) {
          yield* raw.json("POST", "/v1/connectors", { ...apiKeyConnector, name })
        }
        const first = yield* raw.request("GET", "/v1/connectors?limit=1&name_prefix=page-")
        const cursor: string = first.json.next_cursor
        const flipped = cursor.slice(0, 5) + (cursor[5] === "A" ? "B" : "A") + cursor.slice(6)
        const tampered = yield* raw.request(
          "GET",
          `/v1/connectors?limit=1&name_prefix=page-&cursor=${encodeURIComponent(flipped)}`
        )
        assert.strictEqual(tampered.status, 400)
        assertErrorShape(tampered.json, "invalid_cursor")
        const refiltered = yield* raw.request(
          "GET",
          `/v1/connectors?limit=1&kind=http&cursor=${encodeURIComponent(cursor)}`
        )
        assert.strictEqual(refiltered.status, 400)
        assertErrorShape(refiltered.json, "invalid_cursor")
        const badRole = yield* raw.request("GET", "/v1/connectors", {
          headers: { ...viewerHeaders, "x-switchboard-role": "root" }
        })
        assert.strictEqual(badRole.status, 400)
        assertErrorShape(badRole.json, "invalid_parameter")
        assert.deepStrictEqual(
          issuesOf(badRole.json).map((i) => i.path),
          ["x-switchboard-role"]
        )
        const noUser = yield* raw.request("GET", "/v1/connectors", { headers: { "x-switchboard-role": "admin" } })
        assert.strictEqual(noUser.status, 400)
        // The typed client fails with the 400 class.
        const client = yield* Client.DaemonClient
        const typed = yield* client.connectors.list({ query: { cursor: flipped } }).pipe(Effect.flip)
        assert.strictEqual(typed._tag, "BadRequest")
        assert.strictEqual((typed as Api.BadRequest).error.code, "invalid_cursor")
      })
    )

    it.effect(
      "403: a viewer (trusted headers) reads but cannot write; an editor cannot set organization credentials",
      () =>
        Effect.gen(function* () {
          yield* raw.json("POST", "/v1/connectors", { ...apiKeyConnector, name: "policy-api" })
          const read = yield* raw.request("GET", "/v1/connectors/policy-api", { headers: viewerHeaders })
          assert.strictEqual(read.status, 200)
          const attempts = [
            yield* raw.json("POST", "/v1/connectors", { ...apiKeyConnector, name: "viewer-made" }, viewerHeaders),
            yield* raw.json("PATCH", "/v1/connectors/policy-api", { description: "x" }, viewerHeaders),
            yield* raw.request("DELETE", "/v1/connectors/policy-api", { headers: viewerHeaders }),
            yield* raw.json(
              "POST",
              "/v1/connectors/policy-api/user/credentials",
              { values: { api_key: CANARY, domain: "d.test" } },
              viewerHeaders
            ),
            yield* raw.json("POST", "/v1/connectors/policy-api/connections", { name: "V" }, viewerHeaders),
            yield* raw.json(
              "POST",
              "/v1/connectors/policy-api/organization/credentials",
              { values: { api_key: CANARY, domain: "d.test" } },
              editorHeaders
            )
          ]
          for (const res of attempts) {
            assert.strictEqual(res.status, 403, res.text)
            assertErrorShape(res.json, "forbidden")
          }
          // The role is checked before the body is looked at.
          const badBodyAsViewer = yield* raw.request("POST", "/v1/connectors", { body: "{", headers: viewerHeaders })
          assert.strictEqual(badBodyAsViewer.status, 422)
        })
    )

    it.effect("404: unknown connector, connection, route, method", () =>
      Effect.gen(function* () {
        const client = yield* Client.DaemonClient
        const missing = yield* client.connectors.get({ params: { id_or_name: "nope" } }).pipe(Effect.flip)
        assert.strictEqual(missing._tag, "NotFound")
        assert.strictEqual((missing as Api.NotFound).error.code, "connector_not_found")
        for (const [method, path, code] of [
          ["GET", "/v1/connectors/nope/authentication_methods", "connector_not_found"],
          ["GET", "/v1/connections/nope", "connection_not_found"],
          ["GET", "/v1/nothing-here", "route_not_found"],
          ["PUT", "/v1/connectors", "route_not_found"],
          ["GET", "/v1/connectors/x/versions/abc", "route_not_found"]
        ] as const) {
          const res = yield* raw.request(method, path)
          assert.strictEqual(res.status, 404, `${method} ${path}: ${res.text}`)
          assertErrorShape(res.json, code)
        }
      })
    )

    it.effect("409: a duplicate name", () =>
      Effect.gen(function* () {
        const client = yield* Client.DaemonClient
        yield* raw.json("POST", "/v1/connectors", { ...apiKeyConnector, name: "dup" })
        const again = yield* raw.json("POST", "/v1/connectors", { ...apiKeyConnector, name: "dup" })
        assert.strictEqual(again.status, 409)
        assertErrorShape(again.json, "name_taken")
        const typed = yield* client.connectors
          .create({ payload: { ...apiKeyConnector, name: "dup" } })
          .pipe(Effect.flip)
        assert.strictEqual(typed._tag, "Conflict")
      })
    )

    it.effect("422: a bad payload lists every issue, excess properties, bad JSON, a bad query", () =>
      Effect.gen(function* () {
        const bad = yield* raw.json("POST", "/v1/connectors", {
          ...apiKeyConnector,
          name: "Bad Name",
          icon_url: "http://example.com/i.svg",
          surprise: true
        })
        assert.strictEqual(bad.status, 422)
        assertErrorShape(bad.json, "validation_failed")
        assert.sameMembers(
          issuesOf(bad.json).map((i) => i.path),
          ["name", "icon_url", "surprise"]
        )
        assert.deepInclude(issuesOf(bad.json), { path: "icon_url", message: "expected an https:// URL" })
        assert.deepInclude(issuesOf(bad.json), { path: "surprise", message: "Expected no excess property" })
        const nested = yield* raw.json("POST", "/v1/connectors", {
          name: "nested",
          proxy_url: "https://x.test",
          auth_patterns: [{ type: "TOKEN" }]
        })
        assert.strictEqual(nested.status, 422)
        assert.include(
          issuesOf(nested.json).map((i) => i.path),
          "auth_patterns[0].type"
        )
        for (const body of ["{", "", "not json", "[1,"]) {
          const res = yield* raw.request("POST", "/v1/connectors", { body })
          assert.strictEqual(res.status, 422, `${JSON.stringify(body)}: ${res.text}`)
          assertErrorShape(res.json, "validation_failed")
        }
        for (const type of ["text/plain", "application/x-www-form-urlencoded"]) {
          const res = yield* raw.request("POST", "/v1/connectors", { body: "{}", headers: { "content-type": type } })
          assert.strictEqual(res.status, 415)
          assertErrorShape(res.json, "unsupported_media_type")
        }
        const notObject = yield* raw.json("POST", "/v1/connectors", [1, 2])
        assert.strictEqual(notObject.status, 422)
        for (const query of ["limit=abc", "limit=500", "limit=0", "kind=ftp", "limit=1.5"]) {
          const res = yield* raw.request("GET", `/v1/connectors?${query}`)
          assert.strictEqual(res.status, 422, `${query}: ${res.text}`)
          assertErrorShape(res.json, "validation_failed")
          assert.isAbove(issuesOf(res.json).length, 0)
        }
        const several = yield* raw.request("GET", "/v1/connectors?limit=abc&kind=ftp")
        assert.sameMembers([...new Set(issuesOf(several.json).map((i) => i.path))], ["limit", "kind"])
        const badStatus = yield* raw.request("GET", "/v1/connections?status=sleeping")
        assert.strictEqual(badStatus.status, 422)
        assert.strictEqual(issuesOf(badStatus.json)[0]?.path, "status")
        // The typed client answers the same 422 with its class.
        const client = yield* Client.DaemonClient
        const typed = yield* client.connectors
          .create({ payload: { ...apiKeyConnector, name: "typed-bad", icon_url: "http://x" } })
          .pipe(Effect.flip)
        assert.strictEqual(typed._tag, "Unprocessable")
        assert.strictEqual((typed as Api.Unprocessable).error.code, "validation_failed")
      })
    )

    it.effect("a secret in the wrong place is refused without being echoed", () =>
      Effect.gen(function* () {
        yield* raw.json("POST", "/v1/connectors", { ...apiKeyConnector, name: "leak-api" })
        const refusals = [
          yield* raw.json("POST", "/v1/connectors/leak-api/user/credentials", {
            values: { api_key: 42, domain: CANARY }
          }),
          yield* raw.json("POST", "/v1/connectors/leak-api/user/credentials", {
            values: { unknown_field: CANARY, domain: "d.test" }
          }),
          yield* raw.json("POST", "/v1/connectors/leak-api/connections", {
            name: "Bad header",
            headers: { "bad header": CANARY_HEADER }
          }),
          yield* raw.json("POST", "/v1/connectors/leak-api/connections", {
            name: "Both",
            credential: { scope: "user", name: "default" },
            security: { api_key: CANARY }
          })
        ]
        for (const res of refusals) assert.strictEqual(res.status, 422, res.text)
      })
    )

    it.effect("no response body or header carries a planted secret", () =>
      Effect.gen(function* () {
        // Everything the other tests did is recorded; read the lists once more to cover the final state.
        yield* raw.request("GET", "/v1/connections?limit=100")
        yield* raw.request("GET", "/v1/audit?limit=100")
        yield* raw.request("GET", "/v1/connectors/cred-api/organization/credentials")
        assert.isAbove(raw.seen.length, 50)
        const texts = [
          ...responseTexts(raw.seen),
          ...typedSeen.map((value) => JSON.stringify(value) ?? ""),
          ...typedSeen.map((value) => String(value))
        ]
        for (const text of texts) {
          for (const fragment of fragments) assert.notInclude(text, fragment, text.slice(0, 300))
        }
      })
    )
  }
)

describe("typed client without a daemon", () => {
  layer(Client.layer(Path.join(dir, "nobody", "switchboard.sock")), { excludeTestServices: true })("", (it) => {
    it.effect("fails with a transport error, not a hang", () =>
      Effect.gen(function* () {
        const client = yield* Client.DaemonClient
        const error = yield* client.health().pipe(Effect.flip)
        assert.strictEqual(error._tag, "HttpClientError")
      })
    )
  })
})
