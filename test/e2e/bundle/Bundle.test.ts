/**
 * Sealed bundles as a user moves their setup: two data directories (two SQLite files, two master keys), the real
 * `switchboard` binary for `key recipient`, `export` and `import`, and a recording HTTP upstream on 127.0.0.1.
 * After the import, calls through the imported connections reach the upstream with the right auth header and
 * the pinned connection still uses connector version 1. A bundle sealed to another machine and a bundle with one
 * byte changed are refused with clear errors and write nothing. No canary secret, connector name or URL is in
 * the bundle's bytes, and no canary in any output.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Layers from "@switchboard/daemon/Layers"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll } from "vitest"
import { killAll, repoRoot, sandbox } from "../daemon/harness.ts"
import { received, recordingServer } from "../proxy/support.ts"

const bin = Path.join(repoRoot, "packages", "daemon", "bin", "switchboard.js")

const CANARY_ORG = "sk-CANARY-bundle-e2e-org-V8tq"
const CANARY_INLINE = "sk-CANARY-bundle-e2e-inline-P2mw"
const CANARY_HEADER = "sk-CANARY-bundle-e2e-header-J6ra"
const CANARIES = [CANARY_ORG, CANARY_INLINE, CANARY_HEADER]

const source = sandbox()
const destination = sandbox()
const stranger = sandbox()
afterAll(() => {
  killAll()
  for (const box of [source, destination, stranger]) box.cleanup()
})

const outputs: Array<string> = []

interface Ran {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs the binary on a data directory; every output is kept for the canary scan. */
const run = (box: { readonly env: Record<string, string> }, ...args: ReadonlyArray<string>) =>
  Effect.promise(
    () =>
      new Promise<Ran>((resolve) => {
        const child = spawn(process.execPath, [bin, ...args], { env: box.env, stdio: ["ignore", "pipe", "pipe"] })
        let stdout = ""
        let stderr = ""
        child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")))
        child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")))
        child.once("close", (code) => {
          outputs.push(stdout, stderr)
          resolve({ code: code ?? -1, stdout, stderr })
        })
      })
  )

/** The Switchboard on a sandbox's data directory, in this process (what the CLI embeds). */
const onBox = <A, E>(
  box: { readonly env: Record<string, string> },
  f: (sb: Switchboard.Switchboard["Service"]) => Effect.Effect<A, E>
) =>
  Effect.flatMap(Effect.service(Switchboard.Switchboard), f).pipe(
    Effect.provide(
      Layers.switchboardLayer({ kind: "sqlite", paths: Layers.resolvePaths({ env: box.env }), env: box.env })
    )
  )

const spellings = (secret: string) => [
  secret,
  Buffer.from(secret).toString("base64"),
  Buffer.from(secret).toString("base64url"),
  Buffer.from(secret).toString("hex")
]

describe("switchboard export / import (binary)", () => {
  it.live(
    "moves connectors, credentials and connections sealed; refuses a wrong recipient and a changed byte",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const up = yield* recordingServer
          // The source: acme v1 (→ /one) and v2 (→ /two), an organization credential, a connection pinned to v1
          // with a secret header, and one on the latest version with inline security.
          yield* onBox(source, (sb) =>
            Effect.gen(function* () {
              yield* sb.createConnector({
                name: "acme-api",
                display_name: "Acme",
                auth_patterns: [
                  {
                    type: "API_KEY",
                    fields: [{ field_name: "api_key", input_type: "password", required: true }],
                    auth_header_key_override: "x-api-key"
                  }
                ],
                proxy_url: `${up.origin}/one`
              })
              yield* sb.updateConnector("acme-api", { proxy_url: `${up.origin}/two` })
              yield* sb.setCredential("acme-api", "organization", { values: { api_key: CANARY_ORG } })
              yield* sb.createConnection("acme-api", {
                name: "pinned",
                connector_version: 1,
                headers: { "x-extra": CANARY_HEADER },
                access_scope: "organizational",
                allow_private_network: true
              })
              yield* sb.createConnection("acme-api", {
                name: "latest",
                security: { api_key: CANARY_INLINE },
                access_scope: "organizational",
                allow_private_network: true
              })
            })
          )

          const recipient = yield* run(destination, "key", "recipient")
          assert.strictEqual(recipient.code, 0, recipient.stderr)
          const to = recipient.stdout.trim()
          assert.match(to, /^sbrk1_[A-Za-z0-9_-]{48}$/)
          const again = yield* run(destination, "--json", "key", "recipient")
          assert.strictEqual(JSON.parse(again.stdout).recipient, to, "the recipient is made once and kept")
          const strangerKey = (yield* run(stranger, "key", "recipient")).stdout.trim()
          const keyFiles = [source, destination].map((box) => Fs.readFileSync(Path.join(box.home, "master.key")))
          assert.isFalse(keyFiles[0]?.equals(keyFiles[1] ?? Buffer.alloc(0)), "two different master keys")

          const file = Path.join(source.dir, "acme-api.sbundle")
          const exported = yield* run(source, "--json", "export", "--to", to, "--out", file)
          assert.strictEqual(exported.code, 0, exported.stderr)
          assert.deepInclude(JSON.parse(exported.stdout), {
            connectors: 1,
            connector_versions: 2,
            credentials: 1,
            connections: 2
          })
          assert.strictEqual(Fs.statSync(file).mode & 0o777, 0o600)
          const bytes = Fs.readFileSync(file)
          for (const secret of [...CANARIES, "acme-api", "pinned", "latest", "x-extra", up.origin, "127.0.0.1"]) {
            for (const spelling of spellings(secret)) {
              assert.strictEqual(bytes.indexOf(spelling), -1, `the bundle holds ${secret} (as ${spelling})`)
            }
          }
          const refusedOverwrite = yield* run(source, "export", "--to", to, "--out", file)
          assert.strictEqual(refusedOverwrite.code, 2, refusedOverwrite.stderr)

          // Sealed to another machine: a clear error, nothing written.
          const elsewhere = Path.join(source.dir, "elsewhere.sbundle")
          assert.strictEqual((yield* run(source, "export", "--to", strangerKey, "--out", elsewhere)).code, 0)
          const wrong = yield* run(destination, "--json", "import", elsewhere)
          assert.strictEqual(wrong.code, 2, wrong.stderr)
          assert.strictEqual(JSON.parse(wrong.stderr).error.code, "bundle_wrong_recipient")

          // One byte of the ciphertext changed: a clear error, nothing written.
          const envelope = JSON.parse(bytes.toString("utf8"))
          const ciphertext = Buffer.from(envelope.ciphertext, "base64")
          const middle = Math.floor(ciphertext.length / 2)
          ciphertext[middle] = (ciphertext[middle] ?? 0) ^ 0x20
          const tamperedFile = Path.join(source.dir, "tampered.sbundle")
          Fs.writeFileSync(tamperedFile, JSON.stringify({ ...envelope, ciphertext: ciphertext.toString("base64") }))
          const tampered = yield* run(destination, "import", tamperedFile)
          assert.strictEqual(tampered.code, 2, tampered.stderr)
          assert.include(tampered.stderr, "(bundle_tampered)")
          // A byte of the file itself (inside the sealed key's base64) changed.
          const raw = Buffer.from(bytes)
          const at = raw.indexOf(envelope.sealed_key) + 10
          raw[at] = raw[at] === 0x41 ? 0x42 : 0x41
          Fs.writeFileSync(tamperedFile, raw)
          const flipped = yield* run(destination, "--json", "import", tamperedFile)
          assert.strictEqual(flipped.code, 2, flipped.stderr)
          assert.strictEqual(JSON.parse(flipped.stderr).error.code, "bundle_tampered")
          const empty = yield* run(destination, "--json", "connector", "list")
          assert.deepStrictEqual(JSON.parse(empty.stdout).data, [], "nothing was written")

          const imported = yield* run(destination, "--json", "import", file)
          assert.strictEqual(imported.code, 0, imported.stderr)
          assert.deepStrictEqual(
            JSON.parse(imported.stdout).items.map((i: { kind: string; outcome: string }) => `${i.kind} ${i.outcome}`),
            ["connector imported", "credential imported", "connection imported", "connection imported"]
          )
          const again2 = yield* run(destination, "--json", "import", file)
          assert.strictEqual(again2.code, 4, again2.stderr)
          assert.strictEqual(JSON.parse(again2.stderr).error.code, "bundle_conflict")

          // The pin holds, and the credentials work: the upstream receives the right auth header.
          const pinned = yield* run(destination, "--json", "connection", "get", "pinned")
          assert.strictEqual(JSON.parse(pinned.stdout).connector_version, 1)
          const v1 = yield* run(destination, "request", "pinned", "GET", "/users")
          assert.strictEqual(v1.code, 0, v1.stderr)
          assert.strictEqual(up.seen.at(-1)?.path, "/one/users")
          assert.deepStrictEqual(received(up.seen.at(-1), "x-api-key"), [CANARY_ORG])
          assert.deepStrictEqual(received(up.seen.at(-1), "x-extra"), [CANARY_HEADER])
          const v2 = yield* run(destination, "request", "latest", "GET", "/users")
          assert.strictEqual(v2.code, 0, v2.stderr)
          assert.strictEqual(up.seen.at(-1)?.path, "/two/users")
          assert.deepStrictEqual(received(up.seen.at(-1), "x-api-key"), [CANARY_INLINE])

          // Both connector versions came over as they were.
          const versions = yield* onBox(destination, (sb) =>
            Effect.all([sb.getConnectorVersion("acme-api", 1), sb.getConnectorVersion("acme-api", 2)])
          )
          const originals = yield* onBox(source, (sb) =>
            Effect.all([sb.getConnectorVersion("acme-api", 1), sb.getConnectorVersion("acme-api", 2)])
          )
          assert.deepStrictEqual(versions, originals)

          const all = outputs.join("\n")
          for (const secret of CANARIES) for (const spelling of spellings(secret)) assert.notInclude(all, spelling)
        })
      ),
    // A dozen CLI processes: seconds each on a loaded 2-core machine.
    180_000
  )
})
