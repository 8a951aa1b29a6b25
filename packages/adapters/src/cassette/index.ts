/**
 * Record and replay: `layerRecord(dir)` wraps the real `Upstream` and `McpUpstream` and writes what they exchange
 * into cassettes (secrets redacted); `layerReplay(dir)` replaces them and serves the cassettes back, offline and
 * without credentials.
 */
export * as Cassette from "./Cassette.ts"
export * as Player from "./Player.ts"
export * as Recorder from "./Recorder.ts"
export { CassetteError } from "./Cassette.ts"
export { layerReplay } from "./Player.ts"
export { layerRecord } from "./Recorder.ts"
