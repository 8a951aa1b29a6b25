#!/usr/bin/env node
/**
 * `node packages/daemon/src/bin.ts`: the `switchboard` binary for whoever starts it by this path. The binary itself
 * is `../bin/switchboard.js`, plain JavaScript, which starts faster (no TypeScript stripping) and runs the build of
 * the CLI when it is fresh, else these sources.
 */
await import(new URL("../bin/switchboard.js", import.meta.url).href)
