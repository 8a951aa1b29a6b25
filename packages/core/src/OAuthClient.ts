/**
 * Port: the OAuth protocol itself, as the adapter speaks it with the MCP SDK's client auth (authorization URLs
 * with PKCE S256, the code exchange and refresh with the client authentication the server supports, revocation,
 * user info, and for MCP servers the discovery, registration and scope selection of the MCP authorization spec).
 * Every request goes through the SSRF guard. Core decides what to ask for and keeps the state; the adapter
 * never stores anything but its own cached registrations.
 *
 * `context` is the adapter's own opaque record of a flow or a token set (for MCP: the registration used and the
 * discovered endpoints and resource); core seals it with the flow, and later with the token set, and hands it
 * back on the next step, so every flow uses exactly the registration it started with.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type { OAuthError, UpstreamError } from "./Errors.ts"

export type TokenEndpointAuthMethod = "client_secret_basic" | "client_secret_post" | "none"

/** An OAuth client: the connector's `oauth_client` credential, or a registration the adapter made. */
export interface ClientCredentials {
  readonly client_id: string
  readonly client_secret?: Redacted.Redacted<string> | undefined
}

/** The fixed endpoints of a REST connector (its `oauth_config`). */
export interface Endpoints {
  readonly authorize_uri: string
  readonly token_uri: string
  readonly revoke_uri?: string | undefined
  /** The issuer identifier a callback's `iss` must equal (RFC 9207); unchecked when absent. */
  readonly issuer?: string | undefined
  readonly token_endpoint_auth_method?: TokenEndpointAuthMethod | undefined
}

/** Who to talk to: a REST connector's endpoints and client, or an MCP server whose endpoints are discovered. */
export type Target =
  | { readonly _tag: "Rest"; readonly endpoints: Endpoints; readonly client: ClientCredentials }
  | {
      readonly _tag: "Mcp"
      /** Registrations are cached per connector and server. */
      readonly connectorId: string
      readonly serverUrl: string
      /** Pre-registered client credentials (an `oauth_client` credential), else CIMD or dynamic registration. */
      readonly client?: ClientCredentials | undefined
    }

/** What a token endpoint answered. */
export interface TokenSet {
  readonly access_token: Redacted.Redacted<string>
  readonly refresh_token?: Redacted.Redacted<string> | undefined
  readonly id_token?: Redacted.Redacted<string> | undefined
  readonly token_type?: string | undefined
  readonly expires_in?: number | undefined
  readonly scope?: string | undefined
}

export interface Network {
  /** Allow loopback and private-network endpoints (the connection's local-first switch). */
  readonly allowPrivateNetwork: boolean
}

export interface AuthorizeRequest extends Network {
  readonly redirectUri: string
  /** Scopes to ask for; for MCP servers, empty means: the server's challenge, else its `scopes_supported`. */
  readonly scopes: ReadonlyArray<string>
  readonly state: string
}

export interface Authorization {
  readonly url: string
  readonly codeVerifier: Redacted.Redacted<string>
  /** The scopes the URL asks for. */
  readonly scopes: ReadonlyArray<string>
  readonly context?: Redacted.Redacted<string> | undefined
}

export interface ExchangeRequest extends Network {
  readonly code: string
  readonly codeVerifier: Redacted.Redacted<string>
  readonly redirectUri: string
  /**
   * The callback's `iss` (RFC 9207): where the authorization server's metadata says it sends one, it is required
   * and must equal the issuer; one that is given is always checked against a known issuer.
   */
  readonly iss?: string | undefined
  readonly context?: Redacted.Redacted<string> | undefined
}

export interface RefreshRequest extends Network {
  readonly refreshToken: Redacted.Redacted<string>
  readonly context?: Redacted.Redacted<string> | undefined
}

export interface RevokeRequest extends Network {
  readonly token: Redacted.Redacted<string>
  readonly hint: "access_token" | "refresh_token"
  readonly context?: Redacted.Redacted<string> | undefined
}

/** What an MCP server answers a request carrying a token: its status and `WWW-Authenticate` challenge. */
export interface Challenge {
  readonly status: number
  readonly error?: string | undefined
  readonly scope?: string | undefined
}

export class OAuthClient extends Context.Service<
  OAuthClient,
  {
    /** A fresh unguessable secret (32 random bytes, base64url) from a CSPRNG. */
    readonly newSecret: Effect.Effect<Redacted.Redacted<string>>
    /** The authorization URL (PKCE S256 always, `resource` for MCP servers) and its code verifier. */
    readonly authorize: (target: Target, request: AuthorizeRequest) => Effect.Effect<Authorization, OAuthError>
    /** Exchange an authorization code; `context` is the token set's, to keep for refreshes. */
    readonly exchange: (
      target: Target,
      request: ExchangeRequest
    ) => Effect.Effect<
      { readonly tokens: TokenSet; readonly context?: Redacted.Redacted<string> | undefined },
      OAuthError
    >
    /** Refresh; reason `oauth_reauthorization_required` for `invalid_grant`. */
    readonly refresh: (target: Target, request: RefreshRequest) => Effect.Effect<TokenSet, OAuthError>
    /** Revoke a token (RFC 7009); false when the server offers no revocation. */
    readonly revoke: (target: Target, request: RevokeRequest) => Effect.Effect<boolean, OAuthError>
    /** The account a token belongs to, from a user info endpoint: email, name, login or sub. */
    readonly userInfo: (
      url: string,
      accessToken: Redacted.Redacted<string>,
      network: Network
    ) => Effect.Effect<Option.Option<string>, OAuthError>
    /** Ask an MCP server what it thinks of a token (for step-up on `insufficient_scope`). */
    readonly challenge: (
      serverUrl: string,
      accessToken: Redacted.Redacted<string>,
      network: Network
    ) => Effect.Effect<Challenge, OAuthError | UpstreamError>
  }
>()("@switchboard/core/OAuthClient") {}
