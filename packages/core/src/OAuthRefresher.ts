/**
 * The hook the upstream callers (the HTTP proxy and MCP tools) run OAuth connections through: refresh ahead of
 * expiry, once after a 401, and step-up after a 403 `insufficient_scope`. Its default does nothing, so the callers
 * work without OAuth wired; the `OAuth` service's `refresherLayer` provides the real one.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type { SwitchboardError } from "./Errors.ts"
import type { ResolvedCall } from "./Switchboard.ts"

export interface TokenRefresherShape {
  /** A call whose access token expires within the skew gets a refreshed one (single-flight). */
  readonly beforeCall: (call: ResolvedCall) => Effect.Effect<ResolvedCall, SwitchboardError>
  /** After a 401: refresh once (unless another caller already did) and give the call to retry with, or none. */
  readonly afterUnauthorized: (call: ResolvedCall) => Effect.Effect<Option.Option<ResolvedCall>, SwitchboardError>
  /**
   * After a 403 from an MCP server: when it asks for more scope (`insufficient_scope`), fail with
   * `oauth_insufficient_scope` carrying a step-up authorization URL (a few times at most); otherwise succeed.
   */
  readonly afterForbidden: (call: ResolvedCall) => Effect.Effect<void, SwitchboardError>
}

export const TokenRefresher = Context.Reference<TokenRefresherShape>(
  "@switchboard/core/OAuthRefresher/TokenRefresher",
  {
    defaultValue: () => ({
      beforeCall: Effect.succeed,
      afterUnauthorized: () => Effect.succeedNone,
      afterForbidden: () => Effect.void
    })
  }
)
