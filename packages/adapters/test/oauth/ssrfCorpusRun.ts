/**
 * The SSRF corpus through every outbound request of the OAuth client, meant to run inside a loopback-only network
 * namespace (see SsrfCorpus.test.ts): `unshare -n sh -c 'ip link set lo up && ip addr add 93.184.215.14/32 dev lo
 * && node ssrfCorpusRun.ts'`. The namespace gives loopback a "public" address, where a well-behaved authorization
 * server (`public.example:9080`, resolved by a fixed table) hands out the corpus input at one step of each flow:
 * as a REST connector's token, userinfo or revocation endpoint or its issuer (whose metadata the RFC 9207 check
 * reads), as an MCP server's URL, as the `resource_metadata`
 * of its challenge (RFC 9728), as the authorization server its protected resource metadata names (RFC 8414
 * discovery), as the `registration_endpoint` (RFC 7591), and as the token and revocation endpoints of the
 * discovered metadata (code exchange, refresh, revocation). Counting listeners on every port the corpus names
 * (80, 443, 8080, 70, 21, 5432, on every address of the namespace) record each connection that arrives. A control
 * run gives each path a legitimate URL on the public server and must succeed, so a refusal is the input's doing.
 * Prints one JSON report on stdout.
 */
/* oxlint-disable no-await-in-loop -- one input and one path at a time: each attempt is matched to the arrivals it caused */
import type { Target } from "@switchboard/core/OAuthClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Http from "node:http"
import * as Net from "node:net"
import { fileURLToPath } from "node:url"
import * as Resolver from "../../src/http/Resolver.ts"
import * as Client from "../../src/oauth/Client.ts"
import * as StateStore from "../../src/oauth/StateStore.ts"
import { bypasses, names } from "../http/ssrfScenarios.ts"

export const PUBLIC_ADDRESS = "93.184.215.14"
const PUB = "http://public.example:9080"
const REDIRECT_URI = "http://127.0.0.1:9/v1/oauth/callback"
const ports = [80, 443, 8080, 70, 21, 5432]

/** Where the public server's redirect inputs send the client (it must never get there). */
export const redirectTargets: ReadonlyArray<string> = [
  "http://127.0.0.1/",
  "http://[::1]:8080/",
  "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
  "http://localhost:5432/",
  "http://0.0.0.0:80/",
  "http://[::ffff:127.0.0.1]:443/"
]

export interface Input {
  /** The URL, marked when the local-first switch is on (the guard must refuse it all the same). */
  readonly name: string
  readonly url: string
  readonly allowPrivateNetwork: boolean
  /** A redirect from the public server to a private address. */
  readonly redirect: boolean
}

/** The adapter's bypass table (each refused with or without the local-first switch, as marked) and redirects. */
export const corpus: ReadonlyArray<Input> = [
  ...bypasses.map((b) => ({
    name: `${b.url}${b.allowPrivateNetwork === true ? " (allow_private_network)" : ""}`,
    url: b.url,
    allowPrivateNetwork: b.allowPrivateNetwork ?? false,
    redirect: false
  })),
  ...redirectTargets.map((target, k) => ({
    name: `${PUB}/redirect/${k} → ${target}`,
    url: `${PUB}/redirect/${k}`,
    allowPrivateNetwork: false,
    redirect: true
  }))
]

export const paths = [
  "REST token endpoint (code exchange)",
  "REST token endpoint (refresh)",
  "REST user_info_uri",
  "REST revocation endpoint",
  "REST issuer metadata (RFC 9207 check)",
  "MCP server (challenge)",
  "MCP protected resource metadata (resource_metadata)",
  "MCP authorization server metadata (discovery)",
  "MCP dynamic client registration",
  "MCP token endpoint (code exchange)",
  "MCP token endpoint (refresh)",
  "MCP revocation endpoint"
] as const

export interface Attempt {
  readonly input: string
  readonly control: boolean
  readonly path: string
  readonly ok: boolean
  /** The OAuthError reason, and the guard's reason when the guard refused (`details.upstream`). */
  readonly reason: string
  readonly upstream: string
  readonly message: string
  /** Connections that arrived at the counting listeners during the attempt. */
  readonly arrivedDuring: number
  /** The public server handed the input out (the flow got as far as the step that uses it). */
  readonly reached: boolean
  /** The HTTP status a successful challenge reported. */
  readonly status?: number | undefined
}

/** A header value as a server would send it: Node only writes Latin-1, so a non-Latin-1 URL goes as parsed. */
const headerSafe = (url: string): string => {
  if (/^[\x20-\xff]*$/u.test(url)) return url
  try {
    return new URL(url).href
  } catch {
    return encodeURI(url)
  }
}

const main = async () => {
  const arrivals: Array<string> = []
  const listeners = await Promise.all(
    ports.map(
      (port) =>
        new Promise<Net.Server>((resolve, reject) => {
          const server = Net.createServer((socket) => {
            arrivals.push(`${socket.remoteAddress} → ${socket.localAddress}:${port}`)
            socket.destroy()
          })
          server.once("error", reject)
          server.listen({ port, host: "::", ipv6Only: false }, () => resolve(server))
        })
    )
  )
  for (const [host, port] of [
    ["127.0.0.1", 8080],
    ["::1", 80]
  ] as const) {
    await new Promise<void>((resolve) => {
      const c = Net.createConnection({ host, port }, () => c.end())
      c.on("close", () => resolve())
      c.on("error", () => resolve())
    })
  }
  await new Promise((resolve) => setTimeout(resolve, 100))
  const control = arrivals.splice(0).length

  // What the public server hands out: `inputs[n]` for the scenario `/s/<kind>/<n>`.
  const inputs: Array<string> = []
  /** Requests the public server answered for each scenario (`kind/n`), and all redirects it issued. */
  const served = new Map<string, number>()
  let redirects = 0
  const bump = (key: string) => served.set(key, (served.get(key) ?? 0) + 1)
  const json = (res: Http.ServerResponse, status: number, body: unknown) =>
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body))
  const asMetadata = (kind: string, n: number) => ({
    issuer: `${PUB}/s/${kind}/${n}`,
    authorization_endpoint: `${PUB}/authorize`,
    token_endpoint: kind === "tok" ? inputs[n] : `${PUB}/token`,
    revocation_endpoint: kind === "tok" ? inputs[n] : `${PUB}/revoke`,
    registration_endpoint: kind === "reg" ? inputs[n] : `${PUB}/register`,
    response_types_supported: ["code"],
    grant_types_supported: ["authorization_code", "refresh_token"],
    code_challenge_methods_supported: ["S256"],
    token_endpoint_auth_methods_supported: ["none"]
  })
  let registrations = 0
  const pub = Http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const url = new URL(req.url ?? "/", PUB)
      const path = url.pathname
      const redirect = /\/redirect\/(\d+)$/u.exec(path)
      if (redirect !== null) {
        redirects++
        res.writeHead(307, { location: redirectTargets[Number(redirect[1])] ?? "/" }).end()
        return
      }
      const scenario = /^\/s\/(\w+)\/(\d+)\/(mcp|prm)$/u.exec(path)
      if (scenario !== null) {
        const [, kind = "", nText = "0", what] = scenario
        const n = Number(nText)
        bump(`${kind}/${n}`)
        if (what === "mcp") {
          const rm = kind === "prm" ? (inputs[n] ?? "") : `${PUB}/s/${kind}/${n}/prm`
          res.writeHead(401, { "www-authenticate": `Bearer resource_metadata="${headerSafe(rm)}"` }).end()
          return
        }
        json(res, 200, {
          resource: `${PUB}/s/${kind}/${n}/mcp`,
          authorization_servers: [kind === "as" ? inputs[n] : `${PUB}/s/${kind}/${n}`]
        })
        return
      }
      const metadata = /^\/\.well-known\/oauth-authorization-server\/s\/(\w+)\/(\d+)$/u.exec(path)
      if (metadata !== null) {
        const [, kind = "", nText = "0"] = metadata
        bump(`${kind}/${nText}`)
        json(res, 200, asMetadata(kind, Number(nText)))
        return
      }
      if (path === "/token") {
        json(res, 200, { access_token: "at", refresh_token: "rt", token_type: "Bearer", expires_in: 3600 })
        return
      }
      if (path === "/register") {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Record<string, unknown>
        json(res, 201, { ...body, client_id: `dyn-${++registrations}` })
        return
      }
      if (path === "/userinfo") {
        json(res, 200, { email: "someone@example.test" })
        return
      }
      if (path === "/revoke") {
        res.writeHead(200).end()
        return
      }
      json(res, 404, { error: "not_found" })
    })
  })
  await new Promise<void>((resolve) => pub.listen(9080, PUBLIC_ADDRESS, () => resolve()))

  const oauth = await Effect.runPromise(
    Client.make({ timeoutMillis: 10_000 }).pipe(
      Effect.provide(
        Layer.merge(Resolver.layerTable({ ...names, "public.example": [[PUBLIC_ADDRESS]] }), StateStore.layerMemory)
      )
    )
  )

  const attempts: Array<Attempt> = []
  const record = async (
    input: string,
    control: boolean,
    path: string,
    reachedKey: string | undefined,
    run: Effect.Effect<unknown, { readonly reason: string; readonly message: string; readonly details?: unknown }>
  ) => {
    const before = arrivals.length
    const servedBefore = reachedKey === undefined ? 0 : (served.get(reachedKey) ?? 0)
    const exit = await Effect.runPromise(Effect.result(run))
    const details = (exit._tag === "Failure" ? (exit.failure.details ?? {}) : {}) as { readonly upstream?: unknown }
    attempts.push({
      input,
      control,
      path,
      ok: exit._tag === "Success",
      reason: exit._tag === "Failure" ? exit.failure.reason : "",
      upstream: typeof details.upstream === "string" ? details.upstream : "",
      message: exit._tag === "Failure" ? exit.failure.message.slice(0, 300) : "",
      arrivedDuring: arrivals.length - before,
      reached: reachedKey === undefined ? true : (served.get(reachedKey) ?? 0) > servedBefore,
      status:
        exit._tag === "Success" && typeof (exit.success as { status?: unknown } | null)?.status === "number"
          ? (exit.success as { status: number }).status
          : undefined
    })
  }

  const client = { client_id: "c", client_secret: Redacted.make("client-secret-canary") }
  const rest = (endpoints: { token_uri?: string; revoke_uri?: string; issuer?: string }): Target => ({
    _tag: "Rest",
    endpoints: {
      authorize_uri: `${PUB}/authorize`,
      token_uri: endpoints.token_uri ?? `${PUB}/token`,
      ...(endpoints.revoke_uri === undefined ? {} : { revoke_uri: endpoints.revoke_uri }),
      ...(endpoints.issuer === undefined ? {} : { issuer: endpoints.issuer })
    },
    client
  })
  const mcp = (kind: string, n: number): Target => ({
    _tag: "Mcp",
    connectorId: `c-${kind}-${n}`,
    serverUrl: `${PUB}/s/${kind}/${n}/mcp`
  })
  const token = Redacted.make("token-canary")
  const authorizeRequest = (network: boolean) => ({
    allowPrivateNetwork: network,
    redirectUri: REDIRECT_URI,
    scopes: [],
    state: "state-0123456789"
  })

  /** Every path for one input; `legit` gives each path its own working URL instead (the control run). */
  const runAll = async (name: string, input: string, allowPrivateNetwork: boolean, legit: boolean) => {
    const network = { allowPrivateNetwork }
    const use = (legitUrl: string) => (legit ? legitUrl : input)
    const slot = (url: string) => {
      inputs.push(url)
      return inputs.length - 1
    }
    const label = legit ? `control (${name})` : name
    await record(
      label,
      legit,
      paths[0],
      undefined,
      oauth.exchange(rest({ token_uri: use(`${PUB}/token`) }), {
        ...network,
        code: "code-0123456789",
        codeVerifier: Redacted.make("verifier-0123456789"),
        redirectUri: REDIRECT_URI
      })
    )
    await record(
      label,
      legit,
      paths[1],
      undefined,
      oauth.refresh(rest({ token_uri: use(`${PUB}/token`) }), { ...network, refreshToken: token })
    )
    await record(label, legit, paths[2], undefined, oauth.userInfo(use(`${PUB}/userinfo`), token, network))
    await record(
      label,
      legit,
      paths[3],
      undefined,
      oauth.revoke(rest({ revoke_uri: use(`${PUB}/revoke`) }), { ...network, token, hint: "refresh_token" })
    )
    // The issuer's metadata is read before the code exchange (the control's issuer publishes none: 404).
    await record(
      label,
      legit,
      paths[4],
      undefined,
      oauth.exchange(rest({ issuer: use(`${PUB}/no-metadata`) }), {
        ...network,
        code: "code-0123456789",
        codeVerifier: Redacted.make("verifier-0123456789"),
        redirectUri: REDIRECT_URI
      })
    )
    await record(label, legit, paths[5], undefined, oauth.challenge(use(`${PUB}/s/ok/0/mcp`), token, network))
    const prm = slot(legit ? `${PUB}/s/prm/${inputs.length}/prm` : input)
    await record(
      label,
      legit,
      paths[6],
      `prm/${prm}`,
      oauth.authorize(mcp("prm", prm), authorizeRequest(allowPrivateNetwork))
    )
    const as = slot(use(`${PUB}/s/ok/0`))
    await record(
      label,
      legit,
      paths[7],
      `as/${as}`,
      oauth.authorize(mcp("as", as), authorizeRequest(allowPrivateNetwork))
    )
    const reg = slot(use(`${PUB}/register`))
    await record(
      label,
      legit,
      paths[8],
      `reg/${reg}`,
      oauth.authorize(mcp("reg", reg), authorizeRequest(allowPrivateNetwork))
    )
    // The token and revocation endpoints of discovered metadata: the authorization itself succeeds (it only
    // registers), and its flow context then carries the input to the exchange, the refresh and the revocation.
    const tok = slot(use(`${PUB}/token`))
    const started = await Effect.runPromise(
      Effect.result(oauth.authorize(mcp("tok", tok), authorizeRequest(allowPrivateNetwork)))
    )
    const context = started._tag === "Success" ? started.success.context : undefined
    const reached = started._tag === "Success" ? undefined : "never"
    const whenStarted = <A, E extends { readonly reason: string; readonly message: string }>(
      f: () => Effect.Effect<A, E>
    ) => (started._tag === "Success" ? f() : Effect.fail(started.failure))
    await record(
      label,
      legit,
      paths[9],
      reached,
      whenStarted(() =>
        oauth.exchange(mcp("tok", tok), {
          ...network,
          code: "code-0123456789",
          codeVerifier: started._tag === "Success" ? started.success.codeVerifier : token,
          redirectUri: REDIRECT_URI,
          context
        })
      )
    )
    await record(
      label,
      legit,
      paths[10],
      reached,
      whenStarted(() => oauth.refresh(mcp("tok", tok), { ...network, refreshToken: token, context }))
    )
    await record(
      label,
      legit,
      paths[11],
      reached,
      whenStarted(() => oauth.revoke(mcp("tok", tok), { ...network, token, hint: "refresh_token", context }))
    )
  }

  await runAll("legitimate endpoints", "", false, true)
  for (const input of corpus) await runAll(input.name, input.url, input.allowPrivateNetwork, false)

  for (const l of listeners) l.close()
  pub.closeAllConnections()
  pub.close()
  // Exit once the report is flushed: a pipe takes it asynchronously.
  process.stdout.write(JSON.stringify({ control, attempts, arrivals, redirects, registrations }), () => process.exit(0))
}

// Run only as a script (the test imports the corpus from here).
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    process.stderr.write(`${String(error)}\n${(error as Error)?.stack ?? ""}\n`)
    process.exit(1)
  })
}
