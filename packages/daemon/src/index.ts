/**
 * @switchboard/daemon: the REST API server on a Unix socket, its lifecycle, the typed client, and the layer
 * composition (the only place real layers are wired).
 */
export * as ApiKeys from "./ApiKeys.ts"
export * as Client from "./Client.ts"
export * as Daemon from "./Daemon.ts"
export * as DaemonError from "./DaemonError.ts"
export * as Handlers from "./Handlers.ts"
export * as Layers from "./Layers.ts"
export * as Server from "./Server.ts"
export { runDaemon } from "./Daemon.ts"
export * as Hub from "./Hub.ts"
export { createHub } from "./Hub.ts"
