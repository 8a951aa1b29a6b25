/**
 * Child processes of the benchmarks: the loopback servers of `child.ts`, and the Switchboard daemon on a Unix
 * socket. Every child started here is killed when the bench process exits, however it exits.
 */
/* oxlint-disable no-await-in-loop -- a benchmark measures one thing at a time, on purpose */
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import { createInterface } from "node:readline"
import { Pool } from "undici"

const children = new Set<ChildProcess.ChildProcess>()
const killAll = () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
}
process.on("exit", killAll)
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    killAll()
    process.exit(130)
  })
}

/** Track a child so it is killed when the bench exits. */
export const track = (child: ChildProcess.ChildProcess): ChildProcess.ChildProcess => {
  children.add(child)
  child.once("exit", () => children.delete(child))
  return child
}

/** Stop a child and wait until it is gone. */
export const stop = (child: ChildProcess.ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000)
    child.once("exit", () => {
      clearTimeout(timer)
      resolve()
    })
    child.kill(signal)
  })

const childScript = Path.join(import.meta.dirname, "child.ts")

/** Start `child.ts MODE …` and wait for the JSON line saying where it listens. */
export const server = async <Info>(mode: string, ...args: ReadonlyArray<string>) => {
  const child = track(
    ChildProcess.spawn(process.execPath, [childScript, mode, ...args], { stdio: ["ignore", "pipe", "inherit"] })
  )
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
  const info = await new Promise<Info>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`child.ts ${mode} exited (${code})`)))
    lines.once("line", (line) => resolve(JSON.parse(line) as Info))
  })
  lines.close()
  return { child, info }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export const repoRoot = Path.resolve(import.meta.dirname, "..", "..")
export const switchboardBin = Path.join(repoRoot, "packages", "daemon", "bin", "switchboard.js")

/** `switchboard --home HOME daemon start` in the foreground (as a service manager runs it), once it answers. */
export const daemon = async (options: {
  readonly home: string
  readonly env: NodeJS.ProcessEnv
  readonly socket: string
  readonly args?: ReadonlyArray<string>
}) => {
  const args = [switchboardBin, "--home", options.home, "daemon", "start", ...(options.args ?? [])]
  const child = track(
    ChildProcess.spawn(process.execPath, args, {
      stdio: ["ignore", "ignore", "pipe"],
      env: options.env
    })
  )
  let stderr = ""
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000)
  })
  const probe = new Pool("http://switchboard", { socketPath: options.socket, connections: 1 })
  const deadline = performance.now() + 30_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the daemon exited (${child.exitCode}): ${stderr}`)
    const ok = await probe
      .request({ method: "GET", path: "/healthz" })
      .then(async (res) => {
        await res.body.dump()
        return res.statusCode === 200
      })
      .catch(() => false)
    if (ok) break
    if (performance.now() > deadline) throw new Error(`the daemon did not answer in 30 s: ${stderr}`)
    await sleep(100)
  }
  await probe.close()
  return child
}
