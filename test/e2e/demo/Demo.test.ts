/**
 * `switchboard demo` run as a user would: the real binary, no configuration, no outside account. It must show
 * every step of the loop working and never print a secret.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

const bin = Path.join(import.meta.dirname, "..", "..", "..", "packages", "daemon", "bin", "switchboard.js")

describe("switchboard demo", () => {
  it("runs the whole loop on loopback and leaves nothing behind", () => {
    const home = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sb-demo-home-"))
    try {
      // SWITCHBOARD_HOME points at an empty directory: the demo must not touch it (it uses a throwaway one).
      const result = spawnSync(process.execPath, [bin, "demo"], {
        env: { PATH: process.env.PATH ?? "", HOME: home, SWITCHBOARD_HOME: home },
        encoding: "utf8",
        timeout: 60_000
      })
      assert.strictEqual(result.status, 0, result.stderr)
      const out = result.stdout
      assert.match(out, /demo-notes: http, API_KEY, proxy_url http:\/\/\{\{host\}\}\/v1/)
      assert.match(out, /Notes \(conn_\w+\): active/)
      assert.match(out, /Calculator \(conn_\w+\): active/)
      assert.match(out, /add: Add two numbers/)
      assert.match(out, /result: 42/)
      assert.match(out, /POST \/notes -> 201 \{"id":2,"text":"written through Switchboard"\}/)
      assert.match(out, /http: ok/)
      assert.match(out, /notes API: 3 requests with the right key, 0 refused/)
      assert.match(out, /calculator MCP: \d+ requests with the right token, 0 refused/)
      assert.match(out, /tool\.call\s+success\s+add/)
      // The generated secrets are shown masked only.
      assert.notMatch(out + result.stderr, /demo_key_[0-9a-f]{8}|demo_token_[0-9a-f]{8}/)
      assert.match(out, /"api_key":"de\*\*\*\w\w"/)
      const dir = /throwaway data directory: (\S+)/.exec(out)?.[1]
      if (dir === undefined) return assert.fail("the demo names its throwaway data directory")
      assert.isFalse(Fs.existsSync(dir), "the throwaway data directory is removed")
      assert.deepStrictEqual(Fs.readdirSync(home), [], "the user's data directory is untouched")
    } finally {
      Fs.rmSync(home, { recursive: true, force: true })
    }
  })
})
