/**
 * Local MCP programs for tests, as `command` values of MCP connectors: the test stdio server in this
 * folder and `@modelcontextprotocol/server-everything` (its stdio mode), both run by the current node.
 */
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

/** The test stdio server (`stdio-server.ts`), run by node's type stripping. */
export const testProgram = (args: ReadonlyArray<string> = []) => ({
  program: process.execPath,
  args: [fileURLToPath(new URL("./stdio-server.ts", import.meta.url)), ...args]
})

/** `@modelcontextprotocol/server-everything` over stdio. */
export const everything = () => {
  const manifest = createRequire(import.meta.url).resolve("@modelcontextprotocol/server-everything/package.json")
  return { program: process.execPath, args: [join(dirname(manifest), "dist", "index.js"), "stdio"] }
}
