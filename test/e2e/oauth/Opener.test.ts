/**
 * Opening an authorization URL (the mcp-remote CVE-2025-6514 lesson): only http(s) URLs, only through the
 * platform's opener spawned without a shell, the URL as one argv element, whatever characters it holds.
 */
import { assert, describe, it } from "@effect/vitest"
import { openCommand, openUrl } from "@switchboard/daemon/cli/AuthCommands"
import * as Effect from "effect/Effect"
import type * as ChildProcess from "node:child_process"
import { EventEmitter } from "node:events"

interface Spawned {
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly options: ChildProcess.SpawnOptions
}

const recorder = () => {
  const calls: Array<Spawned> = []
  const spawn = (command: string, args: ReadonlyArray<string>, options: ChildProcess.SpawnOptions) => {
    calls.push({ command, args, options })
    const child = new EventEmitter() as EventEmitter & { unref: () => void }
    child.unref = () => undefined
    return child as unknown as ChildProcess.ChildProcess
  }
  return { calls, spawn }
}

describe("openUrl", () => {
  it.effect("opens http(s) URLs with xdg-open or open, no shell, the URL as a single argument", () =>
    Effect.gen(function* () {
      const r = recorder()
      const url = "https://auth.example/authorize?a=1&b=$(touch /tmp/x);`id`|cat'\"&state=x y"
      assert.isTrue(yield* openUrl(url, { platform: "linux", spawn: r.spawn }))
      assert.isTrue(yield* openUrl("http://127.0.0.1:8080/cb", { platform: "darwin", spawn: r.spawn }))
      assert.deepStrictEqual(
        r.calls.map((c) => [c.command, c.args.length, c.options.shell]),
        [
          ["xdg-open", 1, false],
          ["open", 1, false]
        ]
      )
      assert.strictEqual(r.calls[0]?.args[0], new URL(url).href)
    })
  )

  it.effect("never opens anything that is not http(s), and nothing on platforms whose openers use a shell", () =>
    Effect.gen(function* () {
      const r = recorder()
      for (const url of [
        "file:///etc/passwd",
        "javascript:alert(1)",
        "ms-settings:network",
        "smb://evil.example/share",
        "vscode://run?cmd=calc",
        "not a url",
        "//evil.example/x"
      ]) {
        assert.isFalse(yield* openUrl(url, { platform: "linux", spawn: r.spawn }), url)
      }
      assert.isFalse(yield* openUrl("https://auth.example/a", { platform: "win32", spawn: r.spawn }))
      assert.deepStrictEqual(r.calls, [])
      assert.isUndefined(openCommand("win32"))
    })
  )
})
