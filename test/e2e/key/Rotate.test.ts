/**
 * `switchboard key rotate` as a user runs it: the real binary on a temporary data directory, refused while the
 * real daemon runs there, then rotating once it is stopped; the daemon starts again on the new key, a canary
 * secret opens after the rotation, and neither the canary nor any key reaches the output.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Layers from "@switchboard/daemon/Layers"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll } from "vitest"
import { killAll, repoRoot, request, sandbox, startDaemon } from "../daemon/harness.ts"

const binEntry = Path.join(repoRoot, "packages", "daemon", "bin", "switchboard.js")
const CANARY = "sk-CANARY-e2e-rotate-4c1d"

const box = sandbox()
afterAll(() => {
  killAll()
  box.cleanup()
})

/** Run the `switchboard` binary in the sandbox, with `stdin`; resolves with its exit code and output. */
const switchboard = (args: ReadonlyArray<string>, stdin = "") =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [binEntry, ...args], { env: box.env, stdio: ["pipe", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8")
    })
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8")
    })
    child.once("close", (code) => resolve({ code: code ?? -1, stdout, stderr }))
    child.stdin.end(stdin)
  })

const keyFile = Path.join(box.home, "master.key")
const spellings = (base64: string) => {
  const bytes = Buffer.from(base64.trim(), "base64")
  return [bytes.toString("base64"), bytes.toString("base64url"), bytes.toString("hex")]
}

const connector = {
  name: "acme-api",
  display_name: "Acme API",
  auth_patterns: [
    {
      type: "API_KEY",
      fields: [
        { field_name: "api_key", input_type: "password", required: true },
        { field_name: "domain", required: true }
      ]
    }
  ],
  proxy_url: "https://{{domain}}/api"
}

describe("switchboard key rotate (binary)", () => {
  it("is refused while the daemon runs; rotates once it stops; the daemon and the canary use the new key", async () => {
    const imported = await switchboard(["connector", "import", "-"], JSON.stringify(connector))
    assert.strictEqual(imported.code, 0, imported.stderr)
    const stored = await switchboard(
      ["cred", "set", "acme-api", "--scope", "organization", "--stdin"],
      JSON.stringify({ api_key: CANARY, domain: "api.acme.test" })
    )
    assert.strictEqual(stored.code, 0, stored.stderr)
    const oldKey = Fs.readFileSync(keyFile, "utf8")

    const daemon = await startDaemon(box)
    const refused = await switchboard(["key", "rotate"])
    assert.strictEqual(refused.code, 4, refused.stderr)
    assert.include(refused.stderr, `is running on ${box.home} and keeps the current key open: stop it first`)
    assert.strictEqual(Fs.readFileSync(keyFile, "utf8"), oldKey)
    daemon.child.kill("SIGTERM")
    await daemon.exited

    const rotated = await switchboard(["--json", "key", "rotate"])
    assert.strictEqual(rotated.code, 0, rotated.stderr)
    const body = JSON.parse(rotated.stdout)
    assert.deepStrictEqual(Object.keys(body).sort(), ["key_id_new", "key_id_old", "provider", "rotated"])
    assert.deepStrictEqual([body.rotated, body.provider], [1, "file"])
    const newKey = Fs.readFileSync(keyFile, "utf8")
    assert.notStrictEqual(newKey, oldKey)
    assert.strictEqual(Fs.statSync(keyFile).mode & 0o777, 0o600)
    assert.isFalse(Fs.existsSync(`${keyFile}.next`))
    const output = [imported, stored, refused, rotated].map((r) => r.stdout + r.stderr).join("\n")
    for (const secret of [CANARY, ...spellings(oldKey), ...spellings(newKey)]) assert.notInclude(output, secret)

    // The daemon starts on the new key and lists the credential (masked).
    const again = await startDaemon(box)
    const listed = await request(box.socket, "GET", "/v1/connectors/acme-api/organization/credentials")
    assert.strictEqual(listed.status, 200, listed.text)
    assert.notInclude(listed.text, CANARY)
    again.child.kill("SIGTERM")
    await again.exited

    // The canary opens under the new key (resolved the way a call through a connection would).
    const paths = Layers.resolvePaths({ env: box.env })
    const values = await Effect.runPromise(
      Effect.gen(function* () {
        const sb = yield* Effect.service(Switchboard.Switchboard)
        yield* sb.createConnection("acme-api", { name: "Prod", access_scope: "organizational" })
        return (yield* sb.resolveCall("Prod")).values
      }).pipe(Effect.provide(Layers.switchboardLayer({ kind: "sqlite", paths, env: box.env })))
    )
    assert.strictEqual(values.api_key === undefined ? undefined : Redacted.value(values.api_key), CANARY)
    // Two real daemon starts and stops plus several CLI processes: seconds each on a loaded 2-core machine.
  }, 120_000)
})
