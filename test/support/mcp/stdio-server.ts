/**
 * A local MCP program for tests, on stdio (run as `node stdio-server.ts [args…]`). Its tools report what the
 * program was started with, without echoing secrets: `whoami` gives `process.argv`, the names of its
 * environment variables and the SHA-256 of one chosen variable; `leak` writes a variable to stderr (a
 * careless program) and `crash` exits. Nothing but protocol goes to stdout.
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js"
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js"
import { CallToolRequestSchema, type CallToolResult, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js"
import { createHash } from "node:crypto"

const text = (t: string, isError = false): CallToolResult => ({ content: [{ type: "text", text: t }], isError })
const nameArg = { type: "object", properties: { name: { type: "string" } }, required: ["name"] } as const

const server = new Server({ name: "switchboard-test-stdio", version: "1.0.0" }, { capabilities: { tools: {} } })
server.setRequestHandler(ListToolsRequestSchema, () => ({
  tools: [
    { name: "whoami", description: "argv, env names and the SHA-256 of one env var", inputSchema: nameArg },
    { name: "leak", description: "write an env var to stderr", inputSchema: nameArg },
    { name: "crash", description: "exit with status 3", inputSchema: { type: "object", properties: {} } },
    {
      name: "echo",
      description: "echo",
      inputSchema: { type: "object", properties: { text: { type: "string" } }, required: ["text"] }
    }
  ]
}))
server.setRequestHandler(CallToolRequestSchema, (request) => {
  const args = request.params.arguments ?? {}
  const value = typeof args.name === "string" ? process.env[args.name] : undefined
  switch (request.params.name) {
    case "whoami":
      return text(
        JSON.stringify({
          argv: process.argv,
          env_names: Object.keys(process.env).sort(),
          sha256: value === undefined ? null : createHash("sha256").update(value).digest("hex")
        })
      )
    case "leak":
      process.stderr.write(`debug: ${String(args.name)}=${value ?? ""}\n`)
      return text("written to stderr")
    case "crash":
      process.stderr.write(`fatal: crashing on request, token was ${process.env.SB_TEST_TOKEN ?? ""}\n`)
      process.exit(3)
    case "echo":
      return text(String(args.text))
    default:
      return text(`unknown tool ${request.params.name}`, true)
  }
})

process.stdin.once("end", () => process.exit(0))
await server.connect(new StdioServerTransport())
process.stderr.write("switchboard-test-stdio ready\n")
