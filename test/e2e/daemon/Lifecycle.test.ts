/**
 * The daemon's lifecycle as a process: a second daemon on the same socket is refused with a clear message, a
 * request in flight when SIGTERM arrives still completes (and what it wrote is there after a restart), the pid
 * file and socket are removed on the way out, a socket left by a killed daemon is replaced, and a socket
 * directory anyone else could reach (0755, a symlink, someone else's) is refused.
 */
import { assert, describe, it } from "@effect/vitest"
import { Daemon } from "@switchboard/daemon"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Path from "node:path"
import { afterAll } from "vitest"
import { eventually, killAll, mainEntry, request, type Sandbox, sandbox, spawnMain, startDaemon } from "./harness.ts"

const boxes: Array<Sandbox> = []
const detached: Array<number> = []
const fresh = () => {
  const box = sandbox()
  boxes.push(box)
  return box
}
afterAll(() => {
  killAll()
  for (const pid of detached) if (Daemon.isAlive(pid)) process.kill(pid, "SIGKILL")
  for (const box of boxes) box.cleanup()
})

const connector = (name: string) => ({ name, display_name: name, proxy_url: "https://api.example.com" })

describe("daemon lifecycle", () => {
  it("refuses a second daemon, finishes a request in flight on SIGTERM, replaces a dead daemon's socket", async () => {
    const box = fresh()
    const first = await startDaemon(box)

    // A second daemon on the same socket is refused; the first keeps running and keeps its pid file.
    const second = spawnMain(box)
    assert.strictEqual(await second.exited, 1)
    assert.include(second.stderr(), `a daemon is already listening on ${box.socket}`)
    assert.strictEqual((await request(box.socket, "GET", "/healthz")).json.pid, first.child.pid)
    assert.strictEqual(Fs.readFileSync(box.pidFile, "utf8").trim(), String(first.child.pid))

    // A slow request: headers and half the body sent, then SIGTERM, then the rest of the body.
    const body = JSON.stringify(connector("in-flight"))
    const req = Http.request({
      socketPath: box.socket,
      method: "POST",
      path: "/v1/connectors",
      agent: false,
      headers: {
        host: "switchboard",
        "content-type": "application/json",
        "content-length": String(Buffer.byteLength(body))
      }
    })
    const answered = new Promise<{ status: number; text: string } | { error: string }>((resolve) => {
      req.on("response", (res) => {
        let text = ""
        res.on("data", (chunk: Buffer) => {
          text += chunk.toString("utf8")
        })
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text }))
      })
      req.on("error", (error) => resolve({ error: String(error) }))
    })
    req.write(body.slice(0, 10))
    // The server has the request once its connection is accepted; give it a moment to read the headers.
    await new Promise((resolve) => setTimeout(resolve, 300))
    first.child.kill("SIGTERM")
    // New connections are refused at once…
    await eventually(async () => (await request(box.socket, "GET", "/healthz").catch(() => undefined)) === undefined)
    // …while the request in flight completes.
    req.end(body.slice(10))
    const result = await answered
    assert.deepInclude(result, { status: 201 }, JSON.stringify(result))
    assert.include([0, 130], await first.exited)
    assert.isFalse(Fs.existsSync(box.pidFile))
    assert.isFalse(Fs.existsSync(box.socket))
    assert.include(first.stderr(), "daemon stopped")

    // Restart: what the request wrote is there. Then a crash leaves a stale socket, which the next start replaces.
    const restarted = await startDaemon(box)
    const found = await request(box.socket, "GET", "/v1/connectors/in-flight")
    assert.strictEqual(found.status, 200)
    restarted.child.kill("SIGKILL")
    await restarted.exited
    assert.isTrue(Fs.lstatSync(box.socket).isSocket())
    const third = await startDaemon(box)
    assert.include(third.stderr(), "removing the stale socket")
    assert.strictEqual((await request(box.socket, "GET", "/v1/connectors/in-flight")).status, 200)
    third.child.kill("SIGINT")
    assert.include([0, 130], await third.exited)
    assert.isFalse(Fs.existsSync(box.socket))
  })

  it("refuses a socket directory others could reach: mode 0755, a symbolic link, another owner", async () => {
    const open = fresh()
    Fs.mkdirSync(Path.join(open.runtime, "switchboard"), { mode: 0o700 })
    Fs.chmodSync(Path.join(open.runtime, "switchboard"), 0o755)
    const wide = spawnMain(open)
    assert.strictEqual(await wide.exited, 1)
    assert.include(wide.stderr(), "has mode 0755")
    assert.include(wide.stderr(), "chmod 700")
    assert.isFalse(Fs.existsSync(open.socket))

    const linked = fresh()
    const elsewhere = Path.join(linked.dir, "elsewhere")
    Fs.mkdirSync(elsewhere, { mode: 0o700 })
    Fs.symlinkSync(elsewhere, Path.join(linked.runtime, "switchboard"))
    const viaLink = spawnMain(linked)
    assert.strictEqual(await viaLink.exited, 1)
    assert.include(viaLink.stderr(), "symbolic link")
    assert.deepStrictEqual(Fs.readdirSync(elsewhere), [])

    if (process.getuid?.() === 0) {
      const theirs = fresh()
      const dir = Path.join(theirs.runtime, "switchboard")
      Fs.mkdirSync(dir, { mode: 0o700 })
      Fs.chownSync(dir, 4242, 4242)
      const foreign = spawnMain(theirs)
      assert.strictEqual(await foreign.exited, 1)
      assert.include(foreign.stderr(), "owned by uid 4242")
    }
  })

  it("starts in the background (spawnDetached), reports status, stops; a second background start is refused", async () => {
    const box = fresh()
    const logFile = `${box.dir}/daemon.log`
    const start = (args: ReadonlyArray<string>) =>
      Daemon.spawnDetached({ command: process.execPath, args, env: box.env, logFile })
    const started = await Effect.runPromise(start([mainEntry, "--store", "memory"]))
    detached.push(started.pid)
    assert.strictEqual(started.socket, box.socket)
    const status = await Effect.runPromise(Daemon.status({ env: box.env }))
    assert.deepInclude(status, { running: true, healthy: true, pid: started.pid, stale_pid_file: false })
    const refused = await Effect.runPromise(Effect.flip(start([mainEntry, "--store", "memory"])))
    assert.strictEqual(refused.reason, "daemon_running")
    const stopped = await Effect.runPromise(Daemon.stop({ env: box.env }))
    assert.strictEqual(stopped.pid, started.pid)
    assert.isFalse(Daemon.isAlive(started.pid))
    assert.isFalse(Fs.existsSync(box.socket))
    assert.deepInclude(await Effect.runPromise(Daemon.status({ env: box.env })), { running: false, pid: null })
    const notRunning = await Effect.runPromise(Effect.flip(Daemon.stop({ env: box.env })))
    assert.strictEqual(notRunning.reason, "daemon_not_running")
    assert.include(Fs.readFileSync(logFile, "utf8"), "daemon listening")
  })
})
