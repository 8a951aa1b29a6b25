/**
 * The HTTP adapter: the SSRF guard, the system DNS resolver and the guarded upstream HTTP client.
 */
export * as DestinationGuard from "./DestinationGuard.ts"
export * as Resolver from "./Resolver.ts"
export * as Ssrf from "./Ssrf.ts"
export * as Upstream from "./Upstream.ts"
