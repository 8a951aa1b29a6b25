/**
 * The `<connection>__request` tool of a REST connection: an HTTP request (method, path below the connection's
 * base URL, query, headers, body) sent through the credential-injecting proxy, and the response (status,
 * headers, body) as JSON. Bodies are read up to a limit; a longer one is cut and the result says so. JSON
 * bodies come back parsed, text as text, anything else base64-encoded. The logic lives in core's `Toolset`, which
 * the agent-framework integrations share.
 */
import * as Toolset from "@switchboard/core/Toolset"

/** The name of the tool each REST connection gets (before the connection prefix). */
export const TOOL = Toolset.REQUEST_TOOL

/** Bodies longer than this are cut (64 KiB by default). */
export const defaultMaxBodyBytes = Toolset.defaultMaxBodyBytes

export const inputSchema = Toolset.requestInputSchema

export const outputSchema = Toolset.requestOutputSchema

/** The tool's definition for a connection, under the name it is offered with. */
export const definition = Toolset.requestDefinition

/** The response as the tool's structured result. */
export const render = Toolset.renderResponse

/** Send the request through the proxy and render the response. Failures are left to the caller. */
export const call = Toolset.request
