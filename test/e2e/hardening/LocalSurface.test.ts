/**
 * The local attack surface: another uid cannot use the daemon's socket (run as `nobody` when the tests run as
 * root); a socket directory that is a symbolic link, a pre-created file or symbolic link at the socket path, and
 * a group- or world-accessible socket directory are refused at start; the opener of authorization URLs never
 * starts anything for a non-http(s) URL and never through a shell, whatever the URL holds (fast-check).
 */
import { openUrl } from "@switchboard/daemon/cli/AuthCommands"
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { spawnSync } from "node:child_process"
import type * as ChildProcess from "node:child_process"
import { EventEmitter } from "node:events"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, assert, describe, it } from "vitest"
import { killAll, sandbox, spawnMain, startDaemon } from "../daemon/harness.ts"

const boxes: Array<ReturnType<typeof sandbox>> = []
const box = () => {
  const b = sandbox()
  boxes.push(b)
  return b
}
afterAll(() => {
  killAll()
  for (const b of boxes) b.cleanup()
})

const isRoot = process.getuid?.() === 0
const hasRunuser = spawnSync("runuser", ["--help"], { stdio: "ignore" }).status === 0
const hasCurl = spawnSync("curl", ["--version"], { stdio: "ignore" }).status === 0

export const figures = { foreignUidRefused: 0, socketPathsRefused: 0, openerInputs: 0, openerSpawns: 0 }

describe("the daemon's socket", () => {
  it.skipIf(!isRoot || !hasRunuser || !hasCurl)("cannot be used by another uid (nobody)", async () => {
    const b = box()
    await startDaemon(b)
    // The client as nobody is curl from /usr/bin: this test's own node may live under /root, which nobody
    // cannot execute. The control proves the client itself runs as nobody, so a refusal is the socket's.
    const asNobody = (args: ReadonlyArray<string>) =>
      spawnSync("runuser", ["-u", "nobody", "--", "curl", ...args], { encoding: "utf8", timeout: 20_000 })
    assert.strictEqual(asNobody(["--version"]).status, 0, "curl runs as nobody")
    // -v: curl names the errno of a failed connect ("Immediate connect fail for …: Permission denied").
    const connect = () => asNobody(["-sSv", "--unix-socket", b.socket, "http://switchboard/healthz"])
    // Connecting needs search permission on the private (0700) directories.
    const closed = connect()
    assert.notStrictEqual(closed.status, 0)
    assert.notInclude(closed.stdout, "ok")
    assert.match(closed.stderr, /Permission denied|No such file/, closed.stderr)
    // Even with the directories opened up, the 0600 socket itself refuses nobody.
    for (let dir = Path.dirname(b.socket); dir.startsWith(b.dir); dir = Path.dirname(dir)) Fs.chmodSync(dir, 0o755)
    const opened = connect()
    assert.notStrictEqual(opened.status, 0)
    assert.notInclude(opened.stdout, "ok")
    assert.match(opened.stderr, /Permission denied/, opened.stderr)
    figures.foreignUidRefused += 2
  })

  const refusedStart = async (b: ReturnType<typeof sandbox>, socket: string, why: RegExp) => {
    const spawned = spawnMain(b, [], { SWITCHBOARD_SOCKET: socket })
    const code = await spawned.exited
    assert.notStrictEqual(code, 0, spawned.stderr())
    assert.match(spawned.stderr() + spawned.stdout(), why)
    figures.socketPathsRefused++
  }

  it("refuses a symlinked socket directory, a pre-created file or symlink at the socket path, an open directory", async () => {
    const b = box()
    const real = Path.join(b.dir, "real")
    Fs.mkdirSync(real, { mode: 0o700 })
    const link = Path.join(b.dir, "link")
    Fs.symlinkSync(real, link)
    await refusedStart(b, Path.join(link, "sb.sock"), /symbolic link/)

    const pre = Path.join(b.dir, "pre")
    Fs.mkdirSync(pre, { mode: 0o700 })
    Fs.writeFileSync(Path.join(pre, "sb.sock"), "not a socket")
    await refusedStart(b, Path.join(pre, "sb.sock"), /not a socket/)
    assert.strictEqual(Fs.readFileSync(Path.join(pre, "sb.sock"), "utf8"), "not a socket", "left alone")

    const target = Path.join(b.dir, "victim")
    Fs.writeFileSync(target, "precious")
    Fs.symlinkSync(target, Path.join(pre, "ln.sock"))
    await refusedStart(b, Path.join(pre, "ln.sock"), /not a socket/)
    assert.strictEqual(Fs.readFileSync(target, "utf8"), "precious", "the symlink's target is untouched")

    const open = Path.join(b.dir, "open")
    Fs.mkdirSync(open)
    Fs.chmodSync(open, 0o777)
    await refusedStart(b, Path.join(open, "sb.sock"), /mode 0777/)
  })
})

describe("the authorization URL opener", () => {
  it("opens only http(s) URLs, without a shell, as one argument, whatever they hold", async () => {
    const calls: Array<{ command: string; args: ReadonlyArray<string>; shell: unknown }> = []
    const spawn = (command: string, args: ReadonlyArray<string>, options: ChildProcess.SpawnOptions) => {
      calls.push({ command, args, shell: options.shell })
      const child = new EventEmitter() as EventEmitter & { unref: () => void }
      child.unref = () => undefined
      return child as unknown as ChildProcess.ChildProcess
    }
    const hostile = fc.oneof(
      fc.constantFrom(
        "file:///etc/passwd",
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox",
        "-a /bin/sh",
        "--help",
        "$(touch /tmp/pwned)",
        "`id`",
        "https://a.example/$(id)`id`;|&><'\"\n\r\t",
        "http://a.example/%0a%0dtouch",
        "x-man-page://ls",
        "\\\\evil\\share"
      ),
      fc.string({ unit: "binary", maxLength: 80 }),
      fc.webUrl().map((u) => `${u}$(touch /tmp/pwned);\`id\`|&`)
    )
    await fc.assert(
      fc.asyncProperty(hostile, async (url) => {
        figures.openerInputs++
        const before = calls.length
        const opened = await Effect.runPromise(openUrl(url, { platform: "linux", spawn }))
        if (!opened) {
          assert.strictEqual(calls.length, before)
          return
        }
        figures.openerSpawns++
        const call = calls[calls.length - 1]
        assert.strictEqual(call?.command, "xdg-open")
        assert.strictEqual(call?.shell, false)
        assert.strictEqual(call?.args.length, 1)
        assert.match(call?.args[0] ?? "", /^https?:\/\//)
        assert.notMatch(call?.args[0] ?? "", /[\s`"<>]/)
      }),
      { numRuns: 300, seed: 10_2026 }
    )
  })
})
