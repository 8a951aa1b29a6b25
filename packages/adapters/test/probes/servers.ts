/**
 * Servers on 127.0.0.1 for the probe tests, each written here from the protocol's specification: a PostgreSQL
 * server speaking SCRAM-SHA-256 (server side of RFC 5802, optionally lying about its signature), a MySQL greeting,
 * a MongoDB `hello` over OP_MSG, a Kafka ApiVersions responder, an SSH banner, a silent server, and HTTP servers
 * that check SigV4 (S3, Kinesis), Shared Key (Azure) and an RS256 JWT bearer grant (Google) the way the real
 * services do. Each is scoped: closed with every connection when the test ends.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Azure from "../../src/probes/Azure.ts"
import * as SigV4 from "../../src/probes/SigV4.ts"

export interface Listening {
  readonly port: number
  /** Connections accepted so far. */
  readonly accepted: () => number
}

const close = (srv: Net.Server | Http.Server) =>
  Effect.promise(
    () =>
      new Promise<void>((resolve) => {
        if ("closeAllConnections" in srv) srv.closeAllConnections()
        srv.close(() => resolve())
      })
  )

/** A TCP server on 127.0.0.1 running `onSocket` for each connection. */
export const tcpServer = (onSocket: (socket: Net.Socket) => void): Effect.Effect<Listening, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(
      () =>
        new Promise<{ srv: Net.Server; info: Listening }>((resolve) => {
          let accepted = 0
          const sockets = new Set<Net.Socket>()
          const srv = Net.createServer((socket) => {
            accepted++
            sockets.add(socket)
            socket.on("error", () => {})
            socket.on("close", () => sockets.delete(socket))
            onSocket(socket)
          })
          srv.on("close", () => {
            for (const s of sockets) s.destroy()
          })
          const original = srv.close.bind(srv)
          srv.close = (cb) => {
            for (const s of sockets) s.destroy()
            return original(cb)
          }
          srv.listen(0, "127.0.0.1", () =>
            resolve({ srv, info: { port: (srv.address() as Net.AddressInfo).port, accepted: () => accepted } })
          )
        })
    ),
    ({ srv }) => close(srv)
  ).pipe(Effect.map(({ info }) => info))

/** A port nothing listens on. */
export const closedPort = Effect.promise(
  () =>
    new Promise<number>((resolve) => {
      const srv = Net.createServer()
      srv.listen(0, "127.0.0.1", () => {
        const port = (srv.address() as Net.AddressInfo).port
        srv.close(() => resolve(port))
      })
    })
)

/** Accepts connections and never says a word. */
export const silentServer = tcpServer(() => {})

/** Reads framed messages off a socket: `need(n)` resolves with exactly n bytes. */
const reader = (socket: Net.Socket) => {
  let buffer = Buffer.alloc(0)
  let waiting: { n: number; resolve: (b: Buffer) => void } | undefined
  const pump = () => {
    if (waiting !== undefined && buffer.length >= waiting.n) {
      const { n, resolve } = waiting
      waiting = undefined
      const out = buffer.subarray(0, n)
      buffer = buffer.subarray(n)
      resolve(out)
    }
  }
  socket.on("data", (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk])
    pump()
  })
  return (n: number) =>
    new Promise<Buffer>((resolve) => {
      waiting = { n, resolve }
      pump()
    })
}

const int32 = (n: number) => {
  const b = Buffer.alloc(4)
  b.writeInt32BE(n)
  return b
}
const pgMessage = (type: string, body: Buffer) => Buffer.concat([Buffer.from(type), int32(body.length + 4), body])
const auth = (code: number, rest: Buffer = Buffer.alloc(0)) => pgMessage("R", Buffer.concat([int32(code), rest]))
const pgError = (code: string, message: string) =>
  pgMessage("E", Buffer.from(`SFATAL\0C${code}\0M${message}\0\0`, "utf8"))

export interface PostgresOptions {
  readonly user: string
  readonly password: string
  /** Send a server signature computed from another password: a server that does not know the password. */
  readonly lieAboutSignature?: boolean
}

/** A PostgreSQL server that authenticates one user with SCRAM-SHA-256 (no TLS: it answers SSLRequest with N). */
export const postgresServer = (options: PostgresOptions) =>
  tcpServer((socket) => {
    const need = reader(socket)
    const hmac = (key: Buffer, data: string) => Crypto.createHmac("sha256", key).update(data).digest()
    const run = async () => {
      let length = (await need(4)).readInt32BE(0)
      let body = await need(length - 4)
      if (body.readInt32BE(0) === 80877103) {
        socket.write("N")
        length = (await need(4)).readInt32BE(0)
        body = await need(length - 4)
      }
      const params = body.subarray(4).toString("utf8").split("\0")
      const user = params[params.indexOf("user") + 1]
      socket.write(auth(10, Buffer.from("SCRAM-SHA-256\0\0")))
      const readP = async () => {
        const head = await need(5)
        return need(head.readInt32BE(1) - 4)
      }
      const initial = await readP()
      const mechanismEnd = initial.indexOf(0)
      const clientFirst = initial.subarray(mechanismEnd + 5).toString("utf8")
      const bare = clientFirst.replace(/^n,,/u, "")
      const clientNonce = /r=([^,]+)/u.exec(bare)?.[1] ?? ""
      const salt = Crypto.randomBytes(16)
      const serverFirst = `r=${clientNonce}srv${Crypto.randomBytes(9).toString("base64")},s=${salt.toString("base64")},i=4096`
      socket.write(auth(11, Buffer.from(serverFirst)))
      const clientFinal = (await readP()).toString("utf8")
      const withoutProof = clientFinal.replace(/,p=[^,]+$/u, "")
      const proof = Buffer.from(/p=([^,]+)$/u.exec(clientFinal)?.[1] ?? "", "base64")
      const authMessage = `${bare},${serverFirst},${withoutProof}`
      const salted = Crypto.pbkdf2Sync(options.password, salt, 4096, 32, "sha256")
      const clientKey = hmac(salted, "Client Key")
      const storedKey = Crypto.createHash("sha256").update(clientKey).digest()
      const signature = hmac(storedKey, authMessage)
      const recovered = Buffer.alloc(32)
      for (let i = 0; i < 32; i++) recovered[i] = (proof[i] ?? 0) ^ (signature[i] ?? 0)
      const good = user === options.user && Crypto.createHash("sha256").update(recovered).digest().equals(storedKey)
      if (!good) {
        socket.end(pgError("28P01", `password authentication failed for user "${user}"`))
        return
      }
      const signer = options.lieAboutSignature
        ? Crypto.pbkdf2Sync("not-the-password", salt, 4096, 32, "sha256")
        : salted
      const serverSignature = hmac(hmac(signer, "Server Key"), authMessage)
      socket.write(auth(12, Buffer.from(`v=${serverSignature.toString("base64")}`)))
      socket.write(auth(0))
      socket.write(pgMessage("S", Buffer.from("server_version\x0016.4 (fake)\0")))
      socket.write(pgMessage("K", Buffer.concat([int32(42), int32(7)])))
      socket.write(pgMessage("Z", Buffer.from("I")))
    }
    run().catch(() => socket.destroy())
  })

/** A MySQL server's greeting (protocol 10), or an error packet instead. */
export const mysqlServer = (
  answer: { readonly version: string } | { readonly error: number; readonly message: string }
) =>
  tcpServer((socket) => {
    let payload: Buffer
    if ("version" in answer) {
      const authData = Buffer.from("abcdefgh")
      payload = Buffer.concat([
        Buffer.from([10]),
        Buffer.from(`${answer.version}\0`),
        Buffer.from([1, 0, 0, 0]),
        authData,
        Buffer.from([0]),
        Buffer.from([0xff, 0xf7]),
        Buffer.from([0xff]),
        Buffer.from([2, 0]),
        Buffer.from([0xff, 0x81 | 0x08]),
        Buffer.from([21]),
        Buffer.alloc(10),
        Buffer.from("ijklmnopqrst\0"),
        Buffer.from("caching_sha2_password\0")
      ])
    } else {
      const code = Buffer.alloc(2)
      code.writeUInt16LE(answer.error)
      payload = Buffer.concat([Buffer.from([0xff]), code, Buffer.from(`#HY000${answer.message}`)])
    }
    const head = Buffer.alloc(4)
    head.writeUIntLE(payload.length, 0, 3)
    head[3] = 0
    socket.end(Buffer.concat([head, payload]))
  })

/** A BSON document of doubles, booleans, int32 and strings. */
const bson = (fields: ReadonlyArray<readonly [string, number | boolean | string, ("double" | "int")?]>) => {
  const parts: Array<Buffer> = []
  for (const [name, value, as] of fields) {
    const key = Buffer.from(`${name}\0`)
    if (typeof value === "boolean") parts.push(Buffer.from([0x08]), key, Buffer.from([value ? 1 : 0]))
    else if (typeof value === "string") {
      const len = Buffer.alloc(4)
      len.writeInt32LE(Buffer.byteLength(value) + 1)
      parts.push(Buffer.from([0x02]), key, len, Buffer.from(`${value}\0`))
    } else if (as === "int") {
      const n = Buffer.alloc(4)
      n.writeInt32LE(value)
      parts.push(Buffer.from([0x10]), key, n)
    } else {
      const d = Buffer.alloc(8)
      d.writeDoubleLE(value)
      parts.push(Buffer.from([0x01]), key, d)
    }
  }
  const body = Buffer.concat(parts)
  const size = Buffer.alloc(4)
  size.writeInt32LE(body.length + 5)
  return Buffer.concat([size, body, Buffer.from([0])])
}

/** A MongoDB replica-set primary answering `hello` over OP_MSG; it records the command it was sent. */
export const mongoServer = (commands: Array<string>) =>
  tcpServer((socket) => {
    const need = reader(socket)
    const run = async () => {
      const head = await need(16)
      const rest = await need(head.readInt32LE(0) - 16)
      commands.push(rest.subarray(5).toString("latin1"))
      const doc = bson([
        ["isWritablePrimary", true],
        ["setName", "rs0"],
        ["maxWireVersion", 21, "int"],
        ["ok", 1]
      ])
      const reply = Buffer.alloc(21)
      reply.writeInt32LE(21 + doc.length, 0)
      reply.writeInt32LE(99, 4)
      reply.writeInt32LE(head.readInt32LE(4), 8)
      reply.writeInt32LE(2013, 12)
      socket.write(Buffer.concat([reply, doc]))
    }
    run().catch(() => socket.destroy())
  })

/** A Kafka broker answering ApiVersions v0 with three APIs; it records the API keys it was asked for. */
export const kafkaServer = (asked: Array<number>) =>
  tcpServer((socket) => {
    const need = reader(socket)
    const run = async () => {
      const size = (await need(4)).readInt32BE(0)
      const req = await need(size)
      asked.push(req.readInt16BE(0))
      const body = Buffer.alloc(4 + 2 + 4 + 3 * 6)
      body.writeInt32BE(req.readInt32BE(4), 0)
      body.writeInt16BE(0, 4)
      body.writeInt32BE(3, 6)
      for (const [i, key] of [0, 1, 18].entries()) {
        body.writeInt16BE(key, 10 + i * 6)
        body.writeInt16BE(0, 12 + i * 6)
        body.writeInt16BE(9, 14 + i * 6)
      }
      socket.write(Buffer.concat([int32(body.length), body]))
    }
    run().catch(() => socket.destroy())
  })

/** An SSH server's identification, after a pre-banner line (RFC 4253 §4.2 allows them). */
export const sshServer = (banner = "SSH-2.0-OpenSSH_9.6p1 Debian-3") =>
  tcpServer((socket) => {
    socket.write(`Authorized use only\r\n${banner}\r\n`)
  })

// ---------------------------------------------------------------------------------------------------------------
// HTTP

export interface Seen {
  readonly method: string
  readonly url: string
  readonly headers: Http.IncomingHttpHeaders
  readonly body: string
}

export interface HttpListening extends Listening {
  readonly origin: string
  readonly seen: Array<Seen>
}

export type Handler = (req: Seen, res: Http.ServerResponse) => void

/** An HTTP server on 127.0.0.1 that records every request (with its body) and answers with `handler`. */
export const httpServer = (handler: Handler): Effect.Effect<HttpListening, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(
      () =>
        new Promise<{ srv: Http.Server; info: HttpListening }>((resolve) => {
          const seen: Array<Seen> = []
          let accepted = 0
          const srv = Http.createServer((req, res) => {
            const chunks: Array<Buffer> = []
            req.on("data", (c: Buffer) => chunks.push(c))
            req.on("end", () => {
              const entry = {
                method: req.method ?? "",
                url: req.url ?? "",
                headers: req.headers,
                body: Buffer.concat(chunks).toString("utf8")
              }
              seen.push(entry)
              handler(entry, res)
            })
          })
          srv.on("connection", () => accepted++)
          srv.listen(0, "127.0.0.1", () => {
            const port = (srv.address() as Net.AddressInfo).port
            resolve({ srv, info: { port, origin: `http://127.0.0.1:${port}`, seen, accepted: () => accepted } })
          })
        })
    ),
    ({ srv }) => close(srv)
  ).pipe(Effect.map(({ info }) => info))

const header = (seen: Seen, name: string): string => {
  const v = seen.headers[name]
  return Array.isArray(v) ? v.join(", ") : (v ?? "")
}

/** Check a SigV4 `Authorization` header the way AWS does: recompute it from the request as received. */
export const sigV4Valid = (seen: Seen, secretAccessKey: string, service: string): boolean => {
  const match =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/u.exec(
      header(seen, "authorization")
    )
  if (match === null) return false
  const [, accessKeyId = "", , region = "", svc = "", signedHeaders = "", signature = ""] = match
  if (svc !== service) return false
  const headers: Record<string, string> = {}
  for (const name of signedHeaders.split(";")) headers[name] = header(seen, name)
  const url = new URL(seen.url, `http://${header(seen, "host")}`)
  const payloadHash = service === "s3" ? header(seen, "x-amz-content-sha256") : SigV4.sha256Hex(seen.body)
  const expected = SigV4.sign(
    { method: seen.method, url, headers, payloadHash, region, service, amzDate: header(seen, "x-amz-date") },
    { accessKeyId, secretAccessKey }
  )
  return expected.signature === signature
}

/** An S3-compatible store (path-style) with the given buckets, checking SigV4 with one key pair. */
export const s3Server = (buckets: ReadonlyArray<string>, key: { readonly id: string; readonly secret: string }) =>
  httpServer((seen, res) => {
    const bucket = decodeURIComponent(seen.url.split("?")[0]?.replace(/^\//u, "").split("/")[0] ?? "")
    if (header(seen, "authorization") === "") {
      res.writeHead(403).end()
      return
    }
    if (!header(seen, "authorization").includes(`Credential=${key.id}/`) || !sigV4Valid(seen, key.secret, "s3")) {
      res.writeHead(403, { "content-type": "application/xml" }).end("<Error><Code>SignatureDoesNotMatch</Code></Error>")
      return
    }
    res.writeHead(buckets.includes(bucket) ? 200 : 404, { "x-amz-bucket-region": "us-east-1" }).end()
  })

/** A Kinesis endpoint with the given streams, checking SigV4 (service `kinesis`). */
export const kinesisServer = (streams: ReadonlyArray<string>, key: { readonly id: string; readonly secret: string }) =>
  httpServer((seen, res) => {
    const json = (status: number, body: unknown) =>
      res.writeHead(status, { "content-type": "application/x-amz-json-1.1" }).end(JSON.stringify(body))
    if (header(seen, "x-amz-target") !== "Kinesis_20131202.DescribeStreamSummary") {
      json(400, { __type: "UnknownOperationException" })
      return
    }
    if (!header(seen, "authorization").includes(`Credential=${key.id}/`) || !sigV4Valid(seen, key.secret, "kinesis")) {
      json(400, { __type: "com.amazon.coral.service#UnrecognizedClientException", message: "invalid token" })
      return
    }
    const name = (JSON.parse(seen.body) as { StreamName?: string }).StreamName ?? ""
    if (!streams.includes(name)) {
      json(400, { __type: "ResourceNotFoundException", message: `Stream ${name} not found` })
      return
    }
    json(200, { StreamDescriptionSummary: { StreamName: name, StreamStatus: "ACTIVE" } })
  })

/** Azure Blob Storage in Azurite's path style (`/{account}/{container}`), checking Shared Key or a SAS `sig`. */
export const azureServer = (account: string, containers: ReadonlyArray<string>, key: string, sas: string) =>
  httpServer((seen, res) => {
    const url = new URL(seen.url, "http://azure.local")
    const [, acct, container] = url.pathname.split("/")
    const authorization = header(seen, "authorization")
    let allowed = false
    if (authorization !== "") {
      const ms = { "x-ms-date": header(seen, "x-ms-date"), "x-ms-version": header(seen, "x-ms-version") }
      allowed = authorization === Azure.sharedKey("HEAD", url, account, key, ms)
    } else if (url.searchParams.get("sig") !== null) {
      allowed = url.searchParams.get("sig") === new URLSearchParams(sas).get("sig")
    }
    if (!allowed) {
      res.writeHead(authorization === "" && url.searchParams.get("sig") === null ? 404 : 403).end()
      return
    }
    res.writeHead(acct === account && containers.includes(container ?? "") ? 200 : 404).end()
  })

export const rsaKey = Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })

/**
 * Google: a token endpoint for the JWT bearer grant (checks the RS256 signature against the service account's
 * public key, the audience and the scope) and the GCS JSON API's bucket metadata (`GET /storage/v1/b/{bucket}`).
 */
export const googleServer = (buckets: ReadonlyArray<string>, clientEmail: string) =>
  httpServer((seen, res) => {
    const json = (status: number, body: unknown) =>
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body))
    const url = new URL(seen.url, "http://google.local")
    if (url.pathname === "/token") {
      const form = new URLSearchParams(seen.body)
      const [h = "", c = "", s = ""] = (form.get("assertion") ?? "").split(".")
      const verified = Crypto.createVerify("RSA-SHA256").update(`${h}.${c}`).verify(rsaKey.publicKey, s, "base64url")
      const claims = JSON.parse(Buffer.from(c, "base64url").toString("utf8") || "{}") as Record<string, unknown>
      if (
        form.get("grant_type") !== "urn:ietf:params:oauth:grant-type:jwt-bearer" ||
        !verified ||
        claims.iss !== clientEmail
      ) {
        json(400, { error: "invalid_grant", error_description: "Invalid JWT Signature." })
        return
      }
      json(200, { access_token: "ya29.fake-access-token", token_type: "Bearer", expires_in: 3599 })
      return
    }
    const bucket = /^\/storage\/v1\/b\/([^/]+)$/u.exec(url.pathname)?.[1]
    if (bucket === undefined) {
      json(404, { error: { code: 404 } })
      return
    }
    if (header(seen, "authorization") !== "Bearer ya29.fake-access-token") {
      json(401, { error: { code: 401, message: "Anonymous caller does not have storage.buckets.get access" } })
      return
    }
    json(buckets.includes(decodeURIComponent(bucket)) ? 200 : 404, { name: bucket })
  })

/** A service account key whose token endpoint is `tokenUri`. */
export const serviceAccount = (clientEmail: string, tokenUri: string): string =>
  JSON.stringify({
    type: "service_account",
    project_id: "demo",
    private_key_id: "k1",
    private_key: rsaKey.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    client_email: clientEmail,
    token_uri: tokenUri
  })
