/**
 * A real authorization server on 127.0.0.1 for tests: `oidc-provider` configured for the code flow with PKCE
 * (required), refresh tokens with rotation (a reused refresh token revokes the grant), dynamic client
 * registration, resource indicators (RFC 8707, for an MCP server's resource), revocation and user info. Login and
 * consent need no browser: the interaction route logs in the configured account and grants what was asked for.
 * Every token request is recorded (grant type, `resource`, client authentication), and the next token requests can
 * be made to fail with a given status and body.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { type ClientMetadata, type KoaContextWithOIDC, Provider } from "oidc-provider"

export interface TokenRequest {
  readonly grant_type: string
  readonly resource: string | undefined
  readonly client_auth: string | undefined
  readonly outcome: "success" | "error"
  readonly error?: string | undefined
}

export interface OidcServer {
  readonly issuer: string
  readonly port: number
  readonly provider: Provider
  readonly tokenRequests: Array<TokenRequest>
  /** Every access token, refresh token and authorization code issued. */
  readonly issued: Array<string>
  /** Tokens destroyed (revoked), by kind. */
  readonly revocations: Array<string>
  /** Who logs in at the next interactions. */
  account: string
  /** Resource scopes granted at most (a user or policy granting less than asked); all by default. */
  grantOnly: ReadonlyArray<string> | undefined
  /** Answer the next `n` token requests with this status and body instead of handling them. */
  readonly answerTokenRequests: (n: number, status: number, body: string) => void
  readonly stop: () => Promise<void>
}

export interface OidcOptions {
  /** Pre-registered clients. */
  readonly clients?: ReadonlyArray<ClientMetadata> | undefined
  /** Access token lifetime in seconds (3600 by default). */
  readonly accessTokenTtl?: number | undefined
  /** Scopes resource servers offer, besides the OpenID ones. */
  readonly resourceScopes?: string | undefined
}

const readBody = (req: IncomingMessage) =>
  new Promise<string>((resolve) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
  })

const listen = (server: Server) =>
  new Promise<number>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port))
  })

export const startOidc = async (options: OidcOptions = {}): Promise<OidcServer> => {
  const server = createServer()
  const port = await listen(server)
  const issuer = `http://127.0.0.1:${port}`
  const tokenRequests: Array<TokenRequest> = []
  const revocations: Array<string> = []
  const issued: Array<string> = []
  const failures: Array<{ status: number; body: string }> = []
  const resourceScopes = options.resourceScopes ?? "mcp:tools mcp:admin"
  const grantOnly: { current: ReadonlyArray<string> | undefined } = { current: undefined }

  const provider = new Provider(issuer, {
    clients: [...(options.clients ?? [])],
    clientDefaults: { grant_types: ["authorization_code", "refresh_token"], response_types: ["code"] },
    claims: { openid: ["sub"], email: ["email"], profile: ["name"] },
    scopes: ["openid", "offline_access", "email", "profile", ...resourceScopes.split(" ")],
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      userinfo: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: async () => false,
        getResourceServerInfo: async (_ctx, resourceIndicator) => ({
          // Scopes outside this list are dropped from what is granted (a user or policy granting less).
          scope: grantOnly.current?.join(" ") ?? resourceScopes,
          audience: resourceIndicator,
          accessTokenFormat: "opaque" as const,
          accessTokenTTL: options.accessTokenTtl ?? 3600
        })
      }
    },
    pkce: { required: () => true },
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed("refresh_token"),
    rotateRefreshToken: true,
    ttl: {
      AccessToken: options.accessTokenTtl ?? 3600,
      AuthorizationCode: 60,
      Interaction: 600,
      Grant: 3600,
      Session: 3600,
      RefreshToken: 86400
    },
    cookies: { keys: ["switchboard-test-cookie-key"] },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: async (_ctx, sub) => ({
      accountId: sub,
      claims: async () => ({ sub, email: `${sub}@example.test`, name: sub })
    })
  })
  provider.proxy = false
  const tokenEvent = (outcome: "success" | "error") => (ctx: KoaContextWithOIDC, error?: { error?: string }) => {
    const params = (ctx.oidc?.params ?? {}) as Record<string, unknown>
    tokenRequests.push({
      grant_type: typeof params["grant_type"] === "string" ? params["grant_type"] : "",
      resource: typeof params["resource"] === "string" ? params["resource"] : undefined,
      client_auth: ctx.oidc?.client?.clientAuthMethod,
      outcome,
      ...(error?.error === undefined ? {} : { error: error.error })
    })
  }
  // The provider is an EventEmitter; its typings list only some events.
  const events = provider as unknown as NodeJS.EventEmitter
  events.on("grant.success", tokenEvent("success"))
  events.on("grant.error", (ctx: KoaContextWithOIDC, error: { error?: string }) => tokenEvent("error")(ctx, error))
  // Every token and code handed out (opaque values are their ids), for canaries.
  for (const event of ["access_token.issued", "refresh_token.saved", "authorization_code.saved"]) {
    events.on(event, (token: { jti?: string }) => {
      if (typeof token.jti === "string") issued.push(token.jti)
    })
  }
  // Revoked (or otherwise destroyed) tokens, by kind.
  events.on("refresh_token.destroyed", () => revocations.push("refresh_token"))
  events.on("access_token.destroyed", () => revocations.push("access_token"))

  const state: OidcServer = {
    issuer,
    port,
    provider,
    tokenRequests,
    revocations,
    issued,
    account: "alice",
    get grantOnly() {
      return grantOnly.current
    },
    set grantOnly(scopes) {
      grantOnly.current = scopes
    },
    answerTokenRequests: (n, status, body) => {
      for (let i = 0; i < n; i++) failures.push({ status, body })
    },
    stop: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }

  const interaction = async (req: IncomingMessage, res: ServerResponse) => {
    const details = await provider.interactionDetails(req, res)
    const { prompt, params, session } = details
    if (prompt.name === "login") {
      await provider.interactionFinished(
        req,
        res,
        { login: { accountId: state.account } },
        { mergeWithLastSubmission: false }
      )
      return
    }
    const accountId = session?.accountId ?? state.account
    const grant =
      details.grantId === undefined
        ? new provider.Grant({ accountId, clientId: String(params["client_id"]) })
        : ((await provider.Grant.find(details.grantId)) ??
          new provider.Grant({ accountId, clientId: String(params["client_id"]) }))
    const promptDetails = prompt.details as {
      missingOIDCScope?: ReadonlyArray<string>
      missingOIDCClaims?: ReadonlyArray<string>
      missingResourceScopes?: Readonly<Record<string, ReadonlyArray<string>>>
    }
    if (promptDetails.missingOIDCScope !== undefined) grant.addOIDCScope(promptDetails.missingOIDCScope.join(" "))
    if (promptDetails.missingOIDCClaims !== undefined) grant.addOIDCClaims([...promptDetails.missingOIDCClaims])
    for (const [indicator, scopes] of Object.entries(promptDetails.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(" "))
    }
    const grantId = await grant.save()
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true })
  }

  const callback = provider.callback()
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/"
    if (path.startsWith("/interaction/")) {
      interaction(req, res).catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" }).end(String(error))
      })
      return
    }
    if (path === "/token" && failures.length > 0) {
      const failure = failures.shift() as { status: number; body: string }
      void readBody(req).then(() => {
        res.writeHead(failure.status, { "content-type": "application/json" }).end(failure.body)
      })
      return
    }
    void callback(req, res)
  })
  return state
}
