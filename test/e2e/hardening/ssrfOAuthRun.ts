/**
 * The SSRF corpus (ssrfCorpus.ts) through the OAuth steps of a whole daemon that only a working flow reaches: run
 * inside a loopback-only network namespace whose `lo` also carries a "public" address
 * (`unshare -n sh -c 'ip link set lo up && ip addr add 93.184.215.14/32 dev lo && node ssrfOAuthRun.ts'`, see
 * SsrfOAuth.test.ts). There a well-behaved server (authorization server and MCP server on 93.184.215.14:9080, which
 * the guard allows) hands each input out where a real flow meets it: as a REST connector's `user_info_uri` (read
 * after a successful code exchange at the daemon's own callback), as its `oauth_config.issuer` (whose metadata the
 * RFC 9207 check reads before the exchange), and for an MCP server as the `resource_metadata` of its challenge, the
 * authorization server its protected resource metadata names, and the `registration_endpoint` of that server's
 * metadata. Counting listeners on every port the corpus names record each connection that arrives. A control run
 * with legitimate URLs must work on every path. Prints one JSON report on stdout.
 */
/* oxlint-disable no-await-in-loop -- one input and one path at a time: each attempt is matched to the arrivals it caused */
import * as Daemon from "@switchboard/daemon/Daemon"
import * as Client from "@switchboard/daemon/client"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Schedule from "effect/Schedule"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Os from "node:os"
import * as Path from "node:path"
import { corpus, countingListeners } from "./ssrfCorpus.ts"
import { json, send } from "./support.ts"

export const PUBLIC_ADDRESS = "93.184.215.14"
const PUB = `http://${PUBLIC_ADDRESS}:9080`

export const paths = [
  "OAuth user_info_uri (after the code exchange)",
  "OAuth issuer metadata (RFC 9207 check)",
  "MCP protected resource metadata (resource_metadata)",
  "MCP authorization server metadata (discovery)",
  "MCP dynamic client registration"
] as const

export interface Attempt {
  readonly input: string
  readonly control: boolean
  readonly path: string
  /** The HTTP status of the step that used the input (auth_url or the callback page); 422 at connector creation. */
  readonly status: number
  /** The error code, or for the user-info path the account label the connection ended with. */
  readonly code: string
  /** `details.upstream` of an error: the guard's reason when the guard refused. */
  readonly upstream: string
  readonly arrivedDuring: number
  /** The public server handed the input out (the flow got as far as the step that uses it). */
  readonly reached: boolean
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
  const { arrivals, control, close } = await countingListeners()

  // The public server: `inputs[n]` is what the scenario `/s/<kind>/<n>` hands out.
  const inputs: Array<string> = []
  const served = new Map<string, number>()
  const bump = (key: string) => served.set(key, (served.get(key) ?? 0) + 1)
  const answer = (res: Http.ServerResponse, status: number, body: unknown) =>
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body))
  let tokenRequests = 0
  const pub = Http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const path = new URL(req.url ?? "/", PUB).pathname
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
        answer(res, 200, {
          resource: `${PUB}/s/${kind}/${n}/mcp`,
          authorization_servers: [kind === "as" ? inputs[n] : `${PUB}/s/${kind}/${n}`]
        })
        return
      }
      const metadata = /^\/\.well-known\/oauth-authorization-server\/s\/(\w+)\/(\d+)$/u.exec(path)
      if (metadata !== null) {
        const [, kind = "", nText = "0"] = metadata
        bump(`${kind}/${nText}`)
        answer(res, 200, {
          issuer: `${PUB}/s/${kind}/${nText}`,
          authorization_endpoint: `${PUB}/authorize`,
          token_endpoint: `${PUB}/token`,
          registration_endpoint: kind === "reg" ? inputs[Number(nText)] : `${PUB}/register`,
          response_types_supported: ["code"],
          code_challenge_methods_supported: ["S256"],
          token_endpoint_auth_methods_supported: ["none"]
        })
        return
      }
      if (path === "/token") {
        tokenRequests++
        answer(res, 200, { access_token: "at", refresh_token: "rt", token_type: "Bearer", expires_in: 3600 })
        return
      }
      if (path === "/register") {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Record<string, unknown>
        answer(res, 201, { ...body, client_id: `dyn-${Date.now()}` })
        return
      }
      if (path === "/userinfo") {
        answer(res, 200, { email: "someone@example.test" })
        return
      }
      answer(res, 404, { error: "not_found" })
    })
  })
  await new Promise<void>((resolve) => pub.listen(9080, PUBLIC_ADDRESS, () => resolve()))

  const home = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sbso-"))
  const socket = Path.join(home, "run", "sb.sock")
  const stop = Effect.runFork(
    Daemon.run({ home, store: "memory", env: { SWITCHBOARD_SOCKET: socket }, logRequests: false }).pipe(
      Effect.provide(Logger.layer([Daemon.jsonLogger(() => undefined)]))
    )
  )
  await Effect.runPromise(
    Client.health(socket).pipe(Effect.retry({ schedule: Schedule.spaced("20 millis"), times: 250 }))
  )
  const call = (method: string, path: string, body?: unknown) =>
    send(socket, { method, path, body: body === undefined ? undefined : JSON.stringify(body) }, 30_000)
  const callbackUrl = String(json(await call("GET", "/healthz"))?.oauth_callback_url ?? "")

  const attempts: Array<Attempt> = []
  let counter = 0
  const record = async (
    input: string,
    isControl: boolean,
    path: string,
    reachedKey: string | undefined,
    run: () => Promise<{ status: number; code: string; upstream: string }>
  ) => {
    const before = arrivals.length
    const servedBefore = reachedKey === undefined ? 0 : (served.get(reachedKey) ?? 0)
    const tokensBefore = tokenRequests
    const outcome = await run()
    attempts.push({
      input,
      control: isControl,
      path,
      ...outcome,
      arrivedDuring: arrivals.length - before,
      // The REST paths reach the input after (user info) or right before (issuer) the code exchange.
      reached:
        reachedKey === undefined
          ? outcome.status === 422 || tokenRequests > tokensBefore || path === paths[1]
          : (served.get(reachedKey) ?? 0) > servedBefore
    })
  }
  const errorOf = (res: { status: number; text: string }) => {
    const body = json(res as never)
    return {
      status: res.status,
      code: String(body?.error?.code ?? ""),
      upstream: String(body?.error?.details?.upstream ?? "")
    }
  }

  /** A REST OAuth connector on the public server with `extra` config; authorize and take the callback. */
  const restFlow = async (extra: Record<string, string>) => {
    const name = `rest${++counter}`
    const created = await call("POST", "/v1/connectors", {
      name,
      display_name: name,
      proxy_url: `${PUB}/api`,
      proxy_enabled: true,
      auth_patterns: [
        {
          type: "OAUTH",
          oauth_config: { authorize_uri: `${PUB}/authorize`, token_uri: `${PUB}/token`, ...extra }
        }
      ]
    })
    if (created.status !== 201) return { ...errorOf(created), connection: undefined }
    await call("POST", `/v1/connectors/${name}/organization/credentials`, {
      name: "oauth_client",
      values: { client_id: "c", client_secret: "client-secret-canary" }
    })
    const id = String(json(await call("POST", `/v1/connectors/${name}/connections`, { name }))?.id)
    const authUrl = json(await call("GET", `/v1/connectors/${name}/auth_url?connection=${id}`))?.url
    const state = new URL(String(authUrl)).searchParams.get("state") ?? ""
    const page = await fetch(`${callbackUrl}?code=code-0123456789&state=${encodeURIComponent(state)}`)
    const text = await page.text()
    const connection = json(await call("GET", `/v1/connections/${id}`))
    const code = /oauth_[a-z_]+/u.exec(text)?.[0] ?? ""
    // A failed exchange leaves its message on the connection; the guard's refusals say "refused".
    const lastError = String(connection?.last_error ?? "")
    const upstream = lastError.includes(" refused ")
      ? "destination_refused"
      : lastError.includes("could not resolve host")
        ? "upstream_unreachable"
        : lastError.slice(0, 160)
    return { status: page.status, code, upstream, connection }
  }

  /** An MCP OAuth connector on the public server's scenario `kind/n`; ask for the authorization URL. */
  const mcpFlow = async (kind: string, n: number) => {
    const name = `mcp${++counter}`
    await call("POST", "/v1/connectors", {
      name,
      display_name: name,
      kind: "mcp",
      proxy_url: `${PUB}/s/${kind}/${n}/mcp`,
      auth_patterns: [{ type: "OAUTH", is_mcp: true, oauth_config: { pkce_enabled: true } }]
    })
    await call("POST", `/v1/connectors/${name}/connections`, { name })
    return errorOf(await call("GET", `/v1/connectors/${name}/auth_url`))
  }

  const runAll = async (input: string, legit: boolean) => {
    const label = legit ? "control (legitimate endpoints)" : input
    const use = (legitUrl: string) => (legit ? legitUrl : input)
    const slot = (url: string) => {
      inputs.push(url)
      return inputs.length - 1
    }
    await record(label, legit, paths[0], undefined, async () => {
      const flow = await restFlow({ user_info_uri: use(`${PUB}/userinfo`) })
      if (flow.connection === undefined) return flow
      // A refused user-info request leaves the connection without an account label (the flow still completes).
      return { status: flow.status, code: String(flow.connection?.account_label ?? ""), upstream: flow.upstream }
    })
    await record(label, legit, paths[1], undefined, async () => {
      const flow = await restFlow({ issuer: use(`${PUB}/no-metadata`) })
      return { status: flow.status, code: flow.code, upstream: flow.upstream }
    })
    const prm = slot(legit ? `${PUB}/s/prm/${inputs.length}/prm` : input)
    await record(label, legit, paths[2], `prm/${prm}`, () => mcpFlow("prm", prm))
    const as = slot(use(`${PUB}/s/ok/0`))
    await record(label, legit, paths[3], `as/${as}`, () => mcpFlow("as", as))
    const reg = slot(use(`${PUB}/register`))
    await record(label, legit, paths[4], `reg/${reg}`, () => mcpFlow("reg", reg))
  }

  await runAll("", true)
  for (const input of corpus) await runAll(input, false)

  const health = await call("GET", "/healthz")
  stop.interruptUnsafe()
  close()
  pub.closeAllConnections()
  pub.close()
  Fs.rmSync(home, { recursive: true, force: true })
  // Exit once the report is flushed: a pipe takes it asynchronously.
  process.stdout.write(JSON.stringify({ control, attempts, arrivals, healthy: health.status === 200 }), () =>
    process.exit(0)
  )
}

main().catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n${(error as Error)?.stack ?? ""}\n`)
  process.exit(1)
})
