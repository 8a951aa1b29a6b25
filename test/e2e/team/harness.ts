/**
 * A team server under test: the real `switchboard` binary in a temporary data directory, `apikey` commands run
 * like an admin would, and `daemon start --listen 127.0.0.1:0` whose TCP address is read from its "daemon
 * listening" log line. Requests go over loopback TCP with `fetch`.
 */
import { ApiKeyStore } from "@switchboard/core/ApiKeyStore"
import { ApiKeys } from "@switchboard/daemon"
import * as Layers from "@switchboard/daemon/Layers"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

export const repoRoot = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..")
const bin = Path.join(repoRoot, "packages", "daemon", "bin", "switchboard.js")

export interface Home {
  readonly dir: string
  readonly env: Record<string, string>
}

/** A data directory and socket of its own; every home made with the same `masterKey` opens the same store. */
export const makeHome = (root: string, name: string, extra: Record<string, string> = {}): Home => {
  const dir = Path.join(root, name)
  Fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
  return {
    dir,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: dir,
      SWITCHBOARD_HOME: dir,
      SWITCHBOARD_SOCKET: Path.join(dir, "run", "sb.sock"),
      ...extra
    }
  }
}

export const tempRoot = (): string => Fs.mkdtempSync(Path.join(Os.tmpdir(), "sb-team-"))

/** A fresh master key, for daemons that must share one store. */
export const masterKey = (): string => randomBytes(32).toString("base64")

export interface CliResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Run the CLI to completion. */
export const cli = (home: Home, args: ReadonlyArray<string>): CliResult => {
  const result = spawnSync(process.execPath, [bin, ...args], { env: home.env, encoding: "utf8", timeout: 30_000 })
  return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr }
}

/** The secret part of a key (`sbk_<16 hex>_<secret>`; the secret may itself hold `_`). */
export const secretOf = (key: string): string => key.slice("sbk_".length + 16 + 1)

export interface CreatedKey {
  readonly id: string
  readonly key: string
  readonly prefix: string
}

export const createKey = (
  home: Home,
  principal: { org: string; workspace: string; user: string; role: string },
  name?: string
): CreatedKey => {
  const result = cli(home, [
    "apikey",
    "create",
    "--json",
    "--org",
    principal.org,
    "--workspace",
    principal.workspace,
    "--user",
    principal.user,
    "--role",
    principal.role,
    ...(name === undefined ? [] : ["--name", name])
  ])
  if (result.code !== 0) throw new Error(`apikey create failed (${result.code}): ${result.stderr}`)
  return JSON.parse(result.stdout) as CreatedKey
}

type Who = { readonly org: string; readonly workspace: string; readonly user: string; readonly role: string }

/** Make keys in this process, on the store the home's configuration names (faster than a CLI run per key). */
export const createKeysInProcess = <const P extends ReadonlyArray<Who>>(
  home: Home,
  principals: P
): Promise<{ [K in keyof P]: CreatedKey }> =>
  Effect.runPromise(
    Effect.gen(function* () {
      const paths = Layers.resolvePaths({ env: home.env })
      const config = yield* Layers.readConfig(paths, home.env)
      const context = yield* Layer.build(
        Layers.oauthStoreLayer({ kind: "sqlite", paths, env: home.env, storeUrl: config.storeUrl })
      )
      const all: ReadonlyArray<Who> = principals
      return yield* Effect.forEach(all, (principal) =>
        ApiKeys.create({ principal: principal as never }).pipe(
          Effect.map(({ key, secret }) => ({ id: key.id, prefix: key.prefix, key: Redacted.value(secret) })),
          Effect.provideService(ApiKeyStore, Context.get(context, ApiKeyStore))
        )
      )
    }).pipe(Effect.scoped)
  ) as Promise<never>

export interface Daemon {
  readonly child: ChildProcess
  readonly url: string
  readonly output: () => string
  readonly exited: Promise<number | null>
  /** SIGTERM and wait for the exit. */
  readonly stop: () => Promise<void>
}

const running = new Set<ChildProcess>()

/** Kill whatever a test left running. */
export const killAll = () => {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  running.clear()
}

/** Start `daemon start --listen 127.0.0.1:0` and wait for its TCP address (or its exit). */
export const startDaemon = (home: Home, args: ReadonlyArray<string> = []): Promise<Daemon> => {
  const child = spawn(process.execPath, [bin, "daemon", "start", "--listen", "127.0.0.1:0", ...args], {
    env: home.env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  running.add(child)
  let output = ""
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  void exited.then(() => running.delete(child))
  return new Promise<Daemon>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the daemon did not start: ${output}`)), 25_000)
    const onData = (chunk: Buffer) => {
      output += chunk.toString("utf8")
      const tcp = /"message":"daemon listening".*?"tcp":"([^"]+)"/u.exec(output)?.[1]
      if (tcp !== undefined) {
        clearTimeout(timer)
        resolve({
          child,
          url: `http://${tcp}`,
          output: () => output,
          exited,
          stop: async () => {
            if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
            await exited
          }
        })
      }
    }
    child.stdout.on("data", onData)
    child.stderr.on("data", onData)
    void exited.then((code) => {
      clearTimeout(timer)
      reject(Object.assign(new Error(`the daemon exited (${code}): ${output}`), { code, output }))
    })
  })
}

export interface Answer {
  readonly status: number
  readonly text: string
  readonly json: any
}

/** One request on a connection of its own (no keep-alive race with the server's idle timeout); `key` goes in `Authorization: Bearer`. */
export const call = (
  daemon: Daemon,
  method: string,
  path: string,
  options: { readonly key?: string; readonly body?: unknown; readonly headers?: Record<string, string> } = {}
): Promise<Answer> =>
  new Promise<Answer>((resolve, reject) => {
    const body = options.body === undefined ? undefined : JSON.stringify(options.body)
    const headers: Record<string, string> = { ...options.headers }
    if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`
    if (body !== undefined) {
      headers["content-type"] = "application/json"
      headers["content-length"] = String(Buffer.byteLength(body))
    }
    const req = Http.request(`${daemon.url}${path}`, { method, headers, agent: false }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (chunk: Buffer) => chunks.push(chunk))
      res.on("error", reject)
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8")
        let json: unknown
        try {
          json = text === "" ? undefined : JSON.parse(text)
        } catch {
          json = undefined
        }
        resolve({ status: res.statusCode ?? 0, text, json })
      })
    })
    req.on("error", reject)
    if (body !== undefined) req.write(body)
    req.end()
  })

/** A minimal HTTP connector (nothing is ever called upstream). */
export const connectorPayload = (name: string) => ({
  name,
  display_name: name,
  proxy_url: "https://api.example.test",
  auth_patterns: [{ type: "BEARER", fields: [{ field_name: "token", label: "Token", input_type: "password" }] }]
})
