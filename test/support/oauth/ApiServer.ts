/**
 * A REST API on 127.0.0.1 that accepts bearer tokens of the test authorization server (checked against the
 * provider itself): `GET /me` answers the token's account, anything without a valid token gets 401.
 */
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import type { OidcServer } from "./OidcServer.ts"

export interface ApiServer {
  readonly url: string
  /** Status of every request, in order. */
  readonly statuses: Array<number>
  readonly stop: () => Promise<void>
}

export const startApi = async (oidc: OidcServer): Promise<ApiServer> => {
  const statuses: Array<number> = []
  const server = createServer((req, res) => {
    const auth = req.headers.authorization ?? ""
    const token = auth.startsWith("Bearer ") ? auth.slice(7) : ""
    void (async () => {
      const found = token === "" ? undefined : await oidc.provider.AccessToken.find(token)
      if (found === undefined || found.isExpired) {
        statuses.push(401)
        res.writeHead(401, { "www-authenticate": 'Bearer error="invalid_token"' }).end()
        return
      }
      statuses.push(200)
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ sub: found.accountId }))
    })()
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    statuses,
    stop: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
