/**
 * Spawning the real daemon (`node packages/daemon/src/main.ts`) in a temporary data directory and runtime
 * directory, and talking to it over its socket like curl does.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

export const repoRoot = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..")
export const mainEntry = Path.join(repoRoot, "packages", "daemon", "src", "main.ts")

export interface Sandbox {
  readonly dir: string
  readonly home: string
  readonly runtime: string
  readonly socket: string
  readonly pidFile: string
  readonly env: Record<string, string>
  readonly cleanup: () => void
}

/** A temp directory with a data directory and an XDG runtime directory, and the environment pointing at them. */
export const sandbox = (): Sandbox => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sbe-"))
  const home = Path.join(dir, "home")
  const runtime = Path.join(dir, "run")
  Fs.mkdirSync(runtime, { mode: 0o700 })
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: dir,
    SWITCHBOARD_HOME: home,
    XDG_RUNTIME_DIR: runtime
  }
  return {
    dir,
    home,
    runtime,
    socket: Path.join(runtime, "switchboard", "switchboard.sock"),
    pidFile: Path.join(home, "daemon.pid"),
    env,
    cleanup: () => Fs.rmSync(dir, { recursive: true, force: true })
  }
}

export interface Spawned {
  readonly child: ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  /** Resolves with the exit code (or 128 + signal number when killed by a signal). */
  readonly exited: Promise<number>
}

const signals: Record<string, number> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 }

const running = new Set<ChildProcess>()

/** Kill whatever a test left running (a failed assertion must not leave daemons behind). */
export const killAll = () => {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  running.clear()
}

/** Run `main.ts` with arguments in the sandbox's environment. */
export const spawnMain = (
  box: Sandbox,
  args: ReadonlyArray<string> = [],
  env: Record<string, string> = {}
): Spawned => {
  const child = spawn(process.execPath, [mainEntry, ...args], {
    env: { ...box.env, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  running.add(child)
  child.once("exit", () => running.delete(child))
  let out = ""
  let err = ""
  child.stdout?.on("data", (chunk: Buffer) => {
    out += chunk.toString("utf8")
  })
  child.stderr?.on("data", (chunk: Buffer) => {
    err += chunk.toString("utf8")
  })
  const exited = new Promise<number>((resolve) => {
    child.once("exit", (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : (signals[signal] ?? 0))))
  })
  return { child, stdout: () => out, stderr: () => err, exited }
}

export interface RawResponse {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly text: string
  readonly json: any
}

const parse = (text: string): unknown => {
  try {
    return text === "" ? undefined : JSON.parse(text)
  } catch {
    return undefined
  }
}

/** One request over the socket, like `curl --unix-socket`. */
export const request = (
  socketPath: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {}
) =>
  new Promise<RawResponse>((resolve, reject) => {
    const text = body === undefined ? undefined : JSON.stringify(body)
    const all: Record<string, string> = { host: "switchboard", ...headers }
    if (text !== undefined) {
      all["content-type"] = "application/json"
      all["content-length"] = String(Buffer.byteLength(text))
    }
    const req = Http.request({ socketPath, method, path, headers: all, agent: false }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (chunk: Buffer) => chunks.push(chunk))
      res.on("end", () => {
        const out = Buffer.concat(chunks).toString("utf8")
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: out, json: parse(out) })
      })
      res.on("error", reject)
    })
    req.on("error", reject)
    if (text !== undefined) req.write(text)
    req.end()
  })

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Wait until `/healthz` answers, or fail with what the daemon printed if it exits first. */
export const waitHealthy = async (box: Sandbox, spawned: Spawned, timeoutMs = 20_000) => {
  let done = false
  void spawned.exited.then(() => {
    done = true
  })
  const deadline = Date.now() + timeoutMs
  const poll = async (): Promise<{ ok: boolean; pid: number; version: string }> => {
    if (done) throw new Error(`the daemon exited before answering:\n${spawned.stderr()}`)
    if (Date.now() > deadline) throw new Error(`the daemon did not answer within ${timeoutMs} ms:\n${spawned.stderr()}`)
    const health = await request(box.socket, "GET", "/healthz").catch(() => undefined)
    if (health?.status === 200) return health.json
    await sleep(50)
    return poll()
  }
  return poll()
}

/** Start a daemon and wait until it answers. */
export const startDaemon = async (box: Sandbox, args: ReadonlyArray<string> = [], env: Record<string, string> = {}) => {
  const spawned = spawnMain(box, args, env)
  const health = await waitHealthy(box, spawned)
  return { ...spawned, health }
}

/** Poll until `check` holds (bounded). */
export const eventually = async (check: () => boolean | Promise<boolean>, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs
  const poll = async (): Promise<void> => {
    if (await check()) return
    if (Date.now() > deadline) throw new Error("condition not met in time")
    await sleep(25)
    return poll()
  }
  return poll()
}
