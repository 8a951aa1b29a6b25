/**
 * Every probe strategy against servers written in `servers.ts` on 127.0.0.1, through the real SSRF guard and
 * the real guarded HTTP client: passing handshakes, refused credentials, missing buckets and streams, servers that
 * speak another protocol, closed ports, silent servers (timeouts), and refused destinations proven before any
 * connection attempt (every socket is opened through a counting `connect` hook confined to loopback).
 */
import { assert, describe, it } from "@effect/vitest"
import { Probe, type ProbeRequest, type ProbeResult } from "@switchboard/core/Probe"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Resolver from "../../src/http/Resolver.ts"
import * as HttpUpstream from "../../src/http/Upstream.ts"
import * as Probes from "../../src/probes/Probes.ts"
import * as S from "./servers.ts"

/** Every connection attempt, by address and port; only loopback is ever really connected to. */
const attempts: Array<string> = []

const connect: HttpUpstream.Connect = (o) => {
  attempts.push(`${o.address}:${o.port}`)
  if (o.address !== "127.0.0.1" && o.address !== "::1") {
    throw Object.assign(new Error(`test confinement: refused to connect to ${o.address}`), { code: "ECONFINED" })
  }
  return HttpUpstream.makeConnect()(o)
}

const table = Resolver.layerTable({
  "db.internal.test": [["10.1.2.3"]],
  "metadata.test": [["169.254.169.254"]],
  "loopback.test": [["127.0.0.1"]],
  "shard-00.cluster0.example.test": [["127.0.0.1"]],
  "evil.test": [["127.0.0.1"]]
})

const layer = (options: Probes.Options = {}) =>
  Probes.layerWith({ connect, ...options }).pipe(
    Layer.provide(HttpUpstream.layerWith({ connect })),
    Layer.provide(table)
  )

const secrets = (values: Record<string, string>) =>
  Object.fromEntries(Object.entries(values).map(([k, v]) => [k, Redacted.make(v)]))

const probe = (
  strategy: ProbeRequest["strategy"],
  config: ProbeRequest["config"],
  credentials: Record<string, string> = {},
  over: Partial<ProbeRequest> & { readonly options?: Probes.Options } = {}
): Effect.Effect<ProbeResult> => {
  const { options, ...rest } = over
  return Probe.use((p) =>
    p.probe({
      strategy,
      config,
      credentials: secrets(credentials),
      allowPrivateNetwork: true,
      timeoutMillis: 5000,
      ...rest
    })
  ).pipe(Effect.provide(layer(options)))
}

const failed = (result: ProbeResult): { readonly reason: string; readonly detail: string } =>
  result.ok ? { reason: "ok", detail: result.detail } : { reason: result.reason, detail: result.detail }

describe("PostgreSQL probe", () => {
  const pg = { user: "svc_kaireon_admin", password: "correct horse battery staple" }

  it.live("completes SCRAM-SHA-256, reports a wrong password as authentication_failed, masks echoed user names", () =>
    Effect.gen(function* () {
      const srv = yield* S.postgresServer(pg)
      const config = { host: "127.0.0.1", port: srv.port, database: "analytics" }
      const good = yield* probe("postgres", config, { username: pg.user, password: pg.password })
      assert.deepStrictEqual(good, {
        ok: true,
        detail: "PostgreSQL 16.4 (fake) accepted the credentials (SCRAM-SHA-256)"
      })
      const bad = failed(yield* probe("postgres", config, { username: pg.user, password: "wrong" }))
      assert.strictEqual(bad.reason, "authentication_failed")
      assert.include(bad.detail, "password authentication failed")
      assert.include(bad.detail, '"sv***in"', "the user name the server echoed is masked")
      assert.notInclude(bad.detail, pg.user)
      const none = yield* probe("postgres", config)
      assert.deepStrictEqual(none, {
        ok: true,
        detail: "PostgreSQL answered and asks for SASL (SCRAM-SHA-256) authentication (no credentials to try)"
      })
      const prefer = yield* probe(
        "postgres",
        { ...config, ssl: "prefer" },
        { username: pg.user, password: pg.password }
      )
      assert.isTrue(prefer.ok, "prefer falls back to plain when the server has no TLS")
      const required = failed(
        yield* probe("postgres", { ...config, ssl: true }, { username: pg.user, password: pg.password })
      )
      assert.strictEqual(required.reason, "protocol_error")
      assert.include(required.detail, "does not accept TLS")
    })
  )

  it.live("catches a server that does not know the password (wrong SCRAM server signature)", () =>
    Effect.gen(function* () {
      const srv = yield* S.postgresServer({ ...pg, lieAboutSignature: true })
      const r = failed(
        yield* probe(
          "postgres",
          { host: "127.0.0.1", port: srv.port, database: "d" },
          { username: pg.user, password: pg.password }
        )
      )
      assert.deepStrictEqual(r.reason, "protocol_error")
      assert.include(r.detail, "does not know the password")
    })
  )

  it.live("tells a closed port, another protocol and a silent server apart", () =>
    Effect.gen(function* () {
      const port = yield* S.closedPort
      const closed = failed(yield* probe("postgres", { host: "127.0.0.1", port, database: "d" }))
      assert.deepStrictEqual(closed, {
        reason: "unreachable",
        detail: `127.0.0.1:${port} refused the connection (ECONNREFUSED)`
      })
      const ssh = yield* S.sshServer()
      const other = failed(yield* probe("postgres", { host: "127.0.0.1", port: ssh.port, database: "d" }))
      assert.deepStrictEqual(other, {
        reason: "protocol_error",
        detail: `127.0.0.1:${ssh.port} does not speak the PostgreSQL protocol`
      })
      const silent = yield* S.silentServer
      const slow = failed(
        yield* probe("postgres", { host: "127.0.0.1", port: silent.port, database: "d" }, {}, { timeoutMillis: 300 })
      )
      assert.deepStrictEqual(slow, { reason: "timeout", detail: "no answer from 127.0.0.1 within 300 ms" })
    })
  )
})

describe("MySQL, MongoDB, Kafka, SSH and TCP probes", () => {
  it.live("MySQL: reads the greeting; an error packet instead is reported by its code", () =>
    Effect.gen(function* () {
      const srv = yield* S.mysqlServer({ version: "8.0.36-fake" })
      assert.deepStrictEqual(yield* probe("mysql", { host: "127.0.0.1", port: srv.port, database: "d" }), {
        ok: true,
        detail: "MySQL server 8.0.36-fake greeted (protocol 10, auth plugin caching_sha2_password)"
      })
      const refusing = yield* S.mysqlServer({
        error: 1130,
        message: "Host '10.0.0.9' is not allowed to connect to this MySQL server"
      })
      const r = failed(yield* probe("mysql", { host: "127.0.0.1", port: refusing.port }))
      assert.strictEqual(r.reason, "authentication_failed")
      assert.include(r.detail, "is not allowed to connect to this MySQL server (MySQL error 1130)")
    })
  )

  it.live("MongoDB: hello over OP_MSG, from host/port or from a connection string whose secrets are never shown", () =>
    Effect.gen(function* () {
      const commands: Array<string> = []
      const srv = yield* S.mongoServer(commands)
      assert.deepStrictEqual(yield* probe("mongodb", { host: "127.0.0.1", port: srv.port }), {
        ok: true,
        detail: "MongoDB answered hello (primary, replica set rs0, wire version 21)"
      })
      assert.include(commands[0] ?? "", "hello")
      assert.include(commands[0] ?? "", "admin")
      const viaUri = yield* probe("mongodb", {
        connectionString: `mongodb://app:hunter2-in-uri@127.0.0.1:${srv.port},127.0.0.1:1/app?replicaSet=rs0`
      })
      assert.isTrue(viaUri.ok)
      assert.notInclude(JSON.stringify(viaUri), "hunter2")
      // mongodb+srv: the SRV answer is looked up, must stay in the queried domain, and implies TLS unless told otherwise.
      const srv2 = (name: string) =>
        Effect.succeed(
          name === "_mongodb._tcp.cluster0.example.test"
            ? [{ name: "shard-00.cluster0.example.test", port: srv.port }]
            : []
        )
      const viaSrv = yield* probe(
        "mongodb",
        { connectionString: "mongodb+srv://cluster0.example.test/?tls=false" },
        {},
        { options: { resolveSrv: srv2 } }
      )
      assert.isTrue(viaSrv.ok, JSON.stringify(viaSrv))
      const outside = (_: string) => Effect.succeed([{ name: "evil.test", port: srv.port }])
      const r = failed(
        yield* probe(
          "mongodb",
          { connectionString: "mongodb+srv://cluster0.example.test/" },
          {},
          { options: { resolveSrv: outside } }
        )
      )
      assert.deepStrictEqual(r, {
        reason: "refused",
        detail: "the SRV record of cluster0.example.test points outside its domain"
      })
    })
  )

  it.live("Kafka: ApiVersions to the first bootstrap server that answers", () =>
    Effect.gen(function* () {
      const asked: Array<number> = []
      const srv = yield* S.kafkaServer(asked)
      const closed = yield* S.closedPort
      const r = yield* probe("kafka", { bootstrapServers: `127.0.0.1:${closed}, PLAINTEXT://127.0.0.1:${srv.port}` })
      assert.deepStrictEqual(r, {
        ok: true,
        detail: `Kafka broker 127.0.0.1:${srv.port} answered ApiVersions (3 APIs)`
      })
      assert.deepStrictEqual(asked, [18])
      const http = yield* S.httpServer((_, res) => res.writeHead(200).end("ok"))
      assert.strictEqual(
        failed(yield* probe("kafka", { bootstrapServers: `127.0.0.1:${http.port}` })).reason,
        "protocol_error"
      )
    })
  )

  it.live("SFTP: the SSH identification line, after any pre-banner lines", () =>
    Effect.gen(function* () {
      const srv = yield* S.sshServer()
      assert.deepStrictEqual(yield* probe("ssh", { host: "127.0.0.1", port: srv.port }), {
        ok: true,
        detail: `SSH server OpenSSH_9.6p1 (protocol 2.0) at 127.0.0.1:${srv.port}`
      })
      const old = yield* S.sshServer("SSH-1.5-ancient")
      assert.strictEqual(failed(yield* probe("ssh", { host: "127.0.0.1", port: old.port })).reason, "protocol_error")
      const kafka = yield* S.kafkaServer([])
      const silent = failed(yield* probe("ssh", { host: "127.0.0.1", port: kafka.port }, {}, { timeoutMillis: 300 }))
      assert.strictEqual(silent.reason, "timeout")
    })
  )

  it.live("TCP: a connect; a name is resolved once and the checked address is what is connected to", () =>
    Effect.gen(function* () {
      const srv = yield* S.silentServer
      const before = attempts.length
      assert.deepStrictEqual(yield* probe("tcp", { host: "loopback.test", port: srv.port }), {
        ok: true,
        detail: `loopback.test (127.0.0.1:${srv.port}) accepts TCP connections`
      })
      assert.deepStrictEqual(attempts.slice(before), [`127.0.0.1:${srv.port}`])
      const port = yield* S.closedPort
      assert.strictEqual(failed(yield* probe("tcp", { host: "127.0.0.1", port })).reason, "unreachable")
      assert.strictEqual(failed(yield* probe("tcp", { host: "127.0.0.1", port: 70000 })).reason, "protocol_error")
      assert.strictEqual(failed(yield* probe("tcp", { host: "a b/c", port: 1 })).reason, "protocol_error")
    })
  )
})

describe("HTTP probe", () => {
  it.live("HEAD, falling back to GET; credentials go along; statuses map to reasons", () =>
    Effect.gen(function* () {
      const srv = yield* S.httpServer((seen, res) => {
        const path = seen.url.split("?")[0]
        if (path === "/get-only" && seen.method === "HEAD") return void res.writeHead(405).end()
        if (path === "/private") {
          return void res.writeHead(seen.headers.authorization === "Bearer tok-1234567890" ? 200 : 401).end()
        }
        if (path === "/missing") return void res.writeHead(404).end()
        if (path === "/down") return void res.writeHead(503).end()
        if (path === "/hook") return void res.writeHead(seen.method === "HEAD" ? 501 : 405).end()
        res.writeHead(200).end("fine")
      })
      const at = (path: string) => ({ url: `${srv.origin}${path}` })
      assert.deepStrictEqual(yield* probe("http", at("/")), {
        ok: true,
        detail: `127.0.0.1:${srv.port} answered HEAD with HTTP 200`
      })
      assert.deepStrictEqual(yield* probe("http", at("/get-only")), {
        ok: true,
        detail: `127.0.0.1:${srv.port} answered GET with HTTP 200`
      })
      assert.deepStrictEqual(
        srv.seen.slice(1, 3).map((s) => s.method),
        ["HEAD", "GET"]
      )
      assert.deepStrictEqual(yield* probe("http", at("/hook")), {
        ok: true,
        detail: `127.0.0.1:${srv.port} answered GET with HTTP 405`
      })
      assert.isTrue((yield* probe("http", at("/private"), { token: "tok-1234567890" })).ok)
      const refused = failed(yield* probe("http", at("/private"), { token: "tok-wrong-0000" }))
      assert.deepStrictEqual(refused, {
        reason: "authentication_failed",
        detail: `127.0.0.1:${srv.port} answered HEAD with HTTP 401: the credentials were refused`
      })
      assert.strictEqual(failed(yield* probe("http", at("/private"))).detail.endsWith("it needs credentials"), true)
      assert.strictEqual(failed(yield* probe("http", at("/missing"))).reason, "not_found")
      assert.isTrue((yield* probe("http", { ...at("/missing"), expect: "any" })).ok, "a base URL may answer 404")
      assert.strictEqual(failed(yield* probe("http", at("/down"))).reason, "protocol_error")
    })
  )

  it.live("sends Basic, verbatim headers and query parameters; never shows the URL's query", () =>
    Effect.gen(function* () {
      const srv = yield* S.httpServer((_, res) => res.writeHead(200).end())
      yield* probe("http", { url: `${srv.origin}/a` }, { username: "svc", password: "pw-123456789" })
      assert.strictEqual(
        srv.seen[0]?.headers.authorization,
        `Basic ${Buffer.from("svc:pw-123456789").toString("base64")}`
      )
      const r = yield* probe(
        "http",
        { url: `${srv.origin}/b` },
        { "header:x-api-key": "k-secret-42", "query:key": "q-secret-43" }
      )
      assert.strictEqual(srv.seen[1]?.headers["x-api-key"], "k-secret-42")
      assert.strictEqual(srv.seen[1]?.url, "/b?key=q-secret-43")
      assert.notInclude(JSON.stringify(r), "secret")
    })
  )
})

describe("bucket and stream checks", () => {
  const aws = { id: "AKIAIOSFODNN7EXAMPLE", secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" }
  const awsCreds = { access_key_id: aws.id, secret_access_key: aws.secret }

  it.live("S3: a SigV4-signed HEAD of the bucket at the endpoint override (path-style)", () =>
    Effect.gen(function* () {
      const srv = yield* S.s3Server(["reports"], aws)
      const config = { bucket: "reports", region: "us-east-1", endpoint: srv.origin }
      assert.deepStrictEqual(yield* probe("s3", config, awsCreds), {
        ok: true,
        detail: `bucket reports answers at 127.0.0.1:${srv.port}`
      })
      assert.strictEqual(srv.seen[0]?.method, "HEAD")
      assert.strictEqual(srv.seen[0]?.url, "/reports")
      assert.strictEqual(failed(yield* probe("s3", { ...config, bucket: "nope" }, awsCreds)).reason, "not_found")
      const wrong = failed(yield* probe("s3", config, { ...awsCreds, secret_access_key: "not-the-secret-key" }))
      assert.deepStrictEqual(wrong, {
        reason: "authentication_failed",
        detail: `127.0.0.1:${srv.port} refused the credentials for bucket reports (HTTP 403)`
      })
      const anonymous = failed(yield* probe("s3", config))
      assert.strictEqual(anonymous.reason, "authentication_failed")
      assert.include(anonymous.detail, "without credentials")
      assert.notInclude(
        JSON.stringify(srv.seen.map((s) => s.headers)),
        aws.secret,
        "the secret key itself is never sent"
      )
    })
  )

  it.live("Kinesis: a signed DescribeStreamSummary", () =>
    Effect.gen(function* () {
      const srv = yield* S.kinesisServer(["orders"], aws)
      const config = { streamName: "orders", region: "eu-west-1", endpoint: srv.origin }
      assert.deepStrictEqual(yield* probe("kinesis", config, awsCreds), {
        ok: true,
        detail: `Kinesis stream orders answers at 127.0.0.1:${srv.port}`
      })
      assert.strictEqual(
        failed(yield* probe("kinesis", { ...config, streamName: "gone" }, awsCreds)).reason,
        "not_found"
      )
      const wrong = failed(yield* probe("kinesis", config, { ...awsCreds, secret_access_key: "nope-nope-nope" }))
      assert.deepStrictEqual(wrong, {
        reason: "authentication_failed",
        detail: `127.0.0.1:${srv.port} refused the credentials (UnrecognizedClientException)`
      })
    })
  )

  it.live("GCS: a service account's JWT bearer grant, then the bucket's metadata", () =>
    Effect.gen(function* () {
      const email = "probe@demo.iam.gserviceaccount.com"
      const srv = yield* S.googleServer(["lake"], email)
      const key = S.serviceAccount(email, `${srv.origin}/token`)
      const config = { bucket: "lake", project: "demo", endpoint: srv.origin }
      assert.deepStrictEqual(yield* probe("gcs", config, { service_account_json: key }), {
        ok: true,
        detail: `bucket lake answers at 127.0.0.1:${srv.port}`
      })
      assert.deepStrictEqual(
        srv.seen.map((s) => `${s.method} ${s.url.split("?")[0]}`),
        ["POST /token", "GET /storage/v1/b/lake"]
      )
      assert.strictEqual(
        failed(yield* probe("gcs", { ...config, bucket: "swamp" }, { service_account_json: key })).reason,
        "not_found"
      )
      assert.strictEqual(failed(yield* probe("gcs", config)).reason, "authentication_failed")
      const stranger = S.serviceAccount("someone@else.iam.gserviceaccount.com", `${srv.origin}/token`)
      const refused = failed(yield* probe("gcs", config, { service_account_json: stranger }))
      assert.deepStrictEqual(refused, {
        reason: "authentication_failed",
        detail: `127.0.0.1:${srv.port} refused the service account (invalid_grant)`
      })
      const garbage = failed(yield* probe("gcs", config, { service_account_json: "{not json" }))
      assert.strictEqual(garbage.reason, "authentication_failed")
      assert.notInclude(JSON.stringify([refused, garbage]), "PRIVATE KEY")
    })
  )

  it.live("Azure Blob: Get Container Properties with the account key (Shared Key) or a SAS token", () =>
    Effect.gen(function* () {
      const accountKey = Buffer.from("azure-account-key-0123456789abcdef").toString("base64")
      const sas = "sv=2021-08-06&ss=b&srt=c&sp=rl&sig=c2FzLXNpZ25hdHVyZQ%3D%3D"
      const srv = yield* S.azureServer("devstoreaccount1", ["reports"], accountKey, sas)
      const config = {
        container: "reports",
        storageAccount: "devstoreaccount1",
        endpoint: `${srv.origin}/devstoreaccount1`
      }
      assert.deepStrictEqual(yield* probe("azure_blob", config, { account_key: accountKey }), {
        ok: true,
        detail: `container reports of devstoreaccount1 answers at 127.0.0.1:${srv.port} (with the account key)`
      })
      assert.isTrue((yield* probe("azure_blob", config, { sas_token: `?${sas}` })).ok)
      assert.strictEqual(
        failed(yield* probe("azure_blob", { ...config, container: "other" }, { account_key: accountKey })).reason,
        "not_found"
      )
      const wrong = Buffer.from("another-key-entirely-0000000000").toString("base64")
      assert.strictEqual(
        failed(yield* probe("azure_blob", config, { account_key: wrong })).reason,
        "authentication_failed"
      )
      const bad = failed(yield* probe("azure_blob", config, { sas_token: "sv=1&sig=forged" }))
      assert.strictEqual(bad.reason, "authentication_failed")
      assert.notInclude(bad.detail, "forged")
    })
  )
})

describe("SSRF guard", () => {
  const every: ReadonlyArray<readonly [ProbeRequest["strategy"], (host: string) => ProbeRequest["config"]]> = [
    ["postgres", (h) => ({ host: h, port: 5432, database: "d" })],
    ["mysql", (h) => ({ host: h, port: 3306 })],
    ["mongodb", (h) => ({ host: h, port: 27017 })],
    ["kafka", (h) => ({ bootstrapServers: `${h}:9092` })],
    ["ssh", (h) => ({ host: h, port: 22 })],
    ["tcp", (h) => ({ host: h, port: 80 })],
    ["http", (h) => ({ url: `http://${h}/` })],
    ["s3", (h) => ({ bucket: "b", region: "us-east-1", endpoint: `http://${h}` })],
    ["kinesis", (h) => ({ streamName: "s", region: "us-east-1", endpoint: `http://${h}` })],
    ["gcs", (h) => ({ bucket: "lake", endpoint: `http://${h}` })],
    ["azure_blob", (h) => ({ container: "c", storageAccount: "acct", endpoint: `http://${h}` })]
  ]

  it.live("refuses private and loopback targets without allow_private_network, before any connection attempt", () =>
    Effect.gen(function* () {
      for (const [strategy, config] of every) {
        for (const host of ["127.0.0.1", "10.1.2.3", "db.internal.test", "192.168.1.10"]) {
          const before = attempts.length
          const r = failed(yield* probe(strategy, config(host), {}, { allowPrivateNetwork: false }))
          assert.strictEqual(r.reason, "refused", `${strategy} ${host}: ${r.detail}`)
          assert.include(r.detail, "set allow_private_network on the connection to allow it")
          assert.strictEqual(attempts.length, before, `${strategy} ${host} must not connect`)
        }
      }
    })
  )

  it.live("refuses cloud metadata addresses even when private networks are allowed", () =>
    Effect.gen(function* () {
      for (const [strategy, config] of every) {
        for (const host of ["169.254.169.254", "metadata.test"]) {
          const before = attempts.length
          const r = failed(yield* probe(strategy, config(host), {}, { allowPrivateNetwork: true }))
          assert.strictEqual(r.reason, "refused", `${strategy} ${host}`)
          assert.include(r.detail, "cloud metadata service")
          assert.strictEqual(attempts.length, before)
        }
      }
    })
  )

  it.live("the daemon-wide switch allows private targets for every probe", () =>
    Effect.gen(function* () {
      const srv = yield* S.sshServer()
      const r = yield* probe(
        "ssh",
        { host: "127.0.0.1", port: srv.port },
        {},
        {
          allowPrivateNetwork: false,
          options: { allowPrivateNetwork: true }
        }
      )
      assert.isTrue(r.ok)
    })
  )
})
