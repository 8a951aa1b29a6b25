/**
 * An MCP server on 127.0.0.1 that requires bearer tokens from the test authorization server, built with the SDK's
 * server-side auth: `mcpAuthMetadataRouter` serves its protected resource metadata (RFC 9728, path-suffixed) and
 * `requireBearerAuth` answers 401 with a `WWW-Authenticate` challenge naming it (403 `insufficient_scope` when a
 * scope is missing). `/mcp` needs `mcp:tools`; `/mcp-admin` also needs `mcp:admin` (for step-up). Tokens are
 * checked against the provider itself, and must have been issued for this resource.
 */
import { mcpAuthMetadataRouter } from "@modelcontextprotocol/sdk/server/auth/router.js"
import { requireBearerAuth } from "@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js"
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js"
import { InvalidTokenError } from "@modelcontextprotocol/sdk/server/auth/errors.js"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js"
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js"
import express from "express"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import type { OidcServer } from "./OidcServer.ts"

export interface McpAuthServer {
  readonly url: string
  readonly adminUrl: string
  readonly origin: string
  /** Status of every request to an MCP endpoint, in order. */
  readonly statuses: Array<number>
  readonly stop: () => Promise<void>
}

const listen = (server: Server) =>
  new Promise<number>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port))
  })

export const startMcpAuth = async (oidc: OidcServer): Promise<McpAuthServer> => {
  const app = express()
  const http = createServer(app)
  const port = await listen(http)
  const origin = `http://127.0.0.1:${port}`
  const statuses: Array<number> = []
  const metadataResponse = await fetch(`${oidc.issuer}/.well-known/openid-configuration`)
  const oauthMetadata = (await metadataResponse.json()) as Parameters<typeof mcpAuthMetadataRouter>[0]["oauthMetadata"]

  const verifier = {
    verifyAccessToken: async (token: string): Promise<AuthInfo> => {
      const found = await oidc.provider.AccessToken.find(token)
      if (found === undefined || found.isExpired) throw new InvalidTokenError("unknown or expired token")
      return {
        token,
        clientId: found.clientId ?? "",
        scopes: (found.scope ?? "").split(" ").filter((s) => s !== ""),
        expiresAt: found.exp ?? 0,
        ...(typeof found.aud === "string" ? { resource: new URL(found.aud) } : {})
      }
    }
  }

  const mount = (path: string, requiredScopes: ReadonlyArray<string>) => {
    const resource = new URL(`${origin}${path}`)
    app.use(
      mcpAuthMetadataRouter({
        oauthMetadata,
        resourceServerUrl: resource,
        scopesSupported: [...requiredScopes],
        resourceName: `test ${path}`
      })
    )
    const bearer = requireBearerAuth({
      verifier,
      requiredScopes: [...requiredScopes],
      resourceMetadataUrl: `${origin}/.well-known/oauth-protected-resource${path}`,
      expectedResource: resource
    })
    app.all(path, (req, res, next) => {
      res.on("finish", () => statuses.push(res.statusCode))
      next()
    })
    const handle = async (req: express.Request, res: express.Response) => {
      const server = new McpServer({ name: "oauth-test", version: "1.0.0" })
      const auth = (req as { auth?: AuthInfo }).auth
      server.registerTool("whoami", { description: "The client and scopes of the caller's token" }, async () => ({
        content: [{ type: "text", text: JSON.stringify({ client: auth?.clientId, scopes: auth?.scopes }) }]
      }))
      const transport = new StreamableHTTPServerTransport({})
      res.on("close", () => {
        void transport.close()
        void server.close()
      })
      await server.connect(transport)
      await transport.handleRequest(req, res, req.body)
    }
    app.post(path, bearer, express.json(), (req, res, next) => {
      handle(req, res).catch(next)
    })
    app.get(path, bearer, (_req, res) => {
      res.status(405).set("allow", "POST").end()
    })
    app.delete(path, bearer, (_req, res) => {
      res.status(405).set("allow", "POST").end()
    })
  }
  mount("/mcp", ["mcp:tools"])
  mount("/mcp-admin", ["mcp:tools", "mcp:admin"])

  return {
    url: `${origin}/mcp`,
    adminUrl: `${origin}/mcp-admin`,
    origin,
    statuses,
    stop: async () => {
      http.closeAllConnections()
      await new Promise<void>((resolve) => http.close(() => resolve()))
    }
  }
}
