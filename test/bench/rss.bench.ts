/**
 * Daemon memory: the resident set (RSS) of the real `switchboard daemon start` on a sealed SQLite data directory
 * holding 1,000 connectors, each with a bearer credential and a connection, idle (2 s after it answers) and at its
 * peak under load: every connection called through the proxy route (16 in flight, round after round, so every
 * record and credential is read and every upstream pool opened) interleaved with connector pages and reads over
 * the socket. Target ≤ 120 MiB for both.
 * Two daemons run side by side on copies of the same data directory with the same load: the `switchboard` bin as
 * shipped (the build when fresh, see `pnpm build`) and the same bin on its TypeScript sources
 * (`SWITCHBOARD_FROM_SOURCES=1`), so the gain of the build is measured in the same run.
 */
/* oxlint-disable no-await-in-loop -- a benchmark measures one thing at a time, on purpose */
import * as Layers from "@switchboard/daemon/Layers"
import * as Principal from "@switchboard/core/Principal"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Pool } from "undici"
import { median, report, type Row, rssMiB, seconds } from "./harness.ts"
import { daemon, server, sleep, stop } from "./processes.ts"

const began = performance.now()
const CONNECTORS = 1_000
const CONCURRENCY = 16
const ROUNDS = 3
const MIB_TARGET = 120

const base = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sbr-"))
process.on("exit", () => Fs.rmSync(base, { recursive: true, force: true }))
const key = Buffer.from(new Uint8Array(32).map((_, i) => (i * 29 + 3) & 0xff)).toString("base64")
const TOKEN = "ghp_bench_0123456789abcdefghijklmnopqrstuvwxyz"

const upstream = await server<{ port: number }>("upstream")
const origin = `http://127.0.0.1:${upstream.info.port}`

// --- one data directory, seeded through the embedded service, then copied for the second daemon -----------------

const seededHome = Path.join(base, "built")
const seedEnv: NodeJS.ProcessEnv = { ...process.env, SWITCHBOARD_MASTER_KEY: key }
const paths = Layers.resolvePaths({ home: seededHome, env: seedEnv })
await Effect.runPromise(Layers.ensureDataDir(paths))
const seed = ManagedRuntime.make(Layers.switchboardLayer({ kind: "sqlite", paths, env: seedEnv }))
const ids = await seed.runPromise(
  Effect.gen(function* () {
    const sb = yield* Switchboard.Switchboard
    const made: Array<{ connection: string; connector: string }> = []
    for (let i = 0; i < CONNECTORS; i++) {
      const connector = yield* sb.createConnector({
        name: `api-${i}`,
        display_name: `API ${i}`,
        auth_patterns: [{ type: "BEARER", fields: [{ field_name: "token", input_type: "password", required: true }] }],
        proxy_url: `${origin}/api`,
        proxy_enabled: true
      })
      yield* sb.setCredential(connector.id, "user", { values: { token: TOKEN } })
      const connection = yield* sb.createConnection(connector.id, {
        name: `conn-${i}`,
        allow_private_network: true,
        rate_limit: { requests_per_second: 10_000, burst: 10_000 }
      })
      made.push({ connection: connection.id, connector: connector.id })
    }
    return made
  }).pipe(Effect.provideService(Principal.CurrentPrincipal, Layers.localPrincipal()))
)
await seed.dispose()
const sourcesHome = Path.join(base, "sources")
Fs.cpSync(seededHome, sourcesHome, { recursive: true })
// The daemon insists on private directories (its socket lives in one): copies get the modes of the originals.
for (const entry of Fs.readdirSync(seededHome, { recursive: true, withFileTypes: true }).filter((e) =>
  e.isDirectory()
)) {
  const from = Path.join(entry.parentPath, entry.name)
  Fs.chmodSync(Path.join(sourcesHome, Path.relative(seededHome, from)), Fs.statSync(from).mode & 0o777)
}
Fs.chmodSync(sourcesHome, Fs.statSync(seededHome).mode & 0o777)
console.log(`  seeded ${CONNECTORS} connectors and connections (${seconds(began)})`)

// --- the two daemons -----------------------------------------------------------------------------------------------

const start = async (name: string, home: string, extraEnv: NodeJS.ProcessEnv) => {
  const socket = Path.join(home, "sb.sock")
  const env = { ...process.env, SWITCHBOARD_MASTER_KEY: key, SWITCHBOARD_SOCKET: socket, ...extraEnv }
  const child = await daemon({ home, env, socket, args: ["--log-file", Path.join(home, "daemon.log")] })
  const pool = new Pool("http://switchboard", { socketPath: socket, connections: CONCURRENCY })
  return { name, child, pid: child.pid as number, pool, idle: [] as Array<number>, peak: 0, rates: [] as Array<number> }
}
const daemons = [
  await start("switchboard daemon", seededHome, {}),
  await start("switchboard daemon (from sources)", sourcesHome, { SWITCHBOARD_FROM_SOURCES: "1" })
]
await sleep(2_000)
for (let i = 0; i < 10; i++) {
  for (const d of daemons) d.idle.push(rssMiB(d.pid))
  await sleep(100)
}
for (const d of daemons) {
  d.peak = Math.max(...d.idle)
  console.log(`  ${d.name}: idle RSS ${median(d.idle).toFixed(1)} MiB (${seconds(began)})`)
}

// --- the same load on each, in turn ----------------------------------------------------------------------------

const get = async (pool: Pool, path: string) => {
  const res = await pool.request({ method: "GET", path })
  const body = await res.body.text()
  if (res.statusCode !== 200) throw new Error(`GET ${path}: HTTP ${res.statusCode}: ${body}`)
}
const paths_ = [
  ...ids.map((id) => `/v1/connections/${id.connection}/proxy/ping`),
  ...ids.map((id) => `/v1/connectors/${id.connector}`),
  ...Array.from({ length: CONNECTORS / 100 }, () => "/v1/connectors?limit=100")
]
for (let round = 0; round < ROUNDS; round++) {
  for (const d of daemons) {
    const timer = setInterval(() => {
      d.peak = Math.max(d.peak, rssMiB(d.pid))
    }, 50)
    let next = 0
    const roundBegan = performance.now()
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < paths_.length) await get(d.pool, paths_[next++] as string)
      })
    )
    clearInterval(timer)
    d.rates.push((paths_.length * 1000) / (performance.now() - roundBegan))
    d.peak = Math.max(d.peak, rssMiB(d.pid))
  }
}
for (const d of daemons) console.log(`  ${d.name}: ${median(d.rates).toFixed(0)} requests/s under the load`)
console.log(`  load done (${seconds(began)})`)

const [built, sources] = daemons as [(typeof daemons)[number], (typeof daemons)[number]]
const idleFigure = `daemon RSS, idle (${CONNECTORS.toLocaleString("en-US")} connectors, ${CONNECTORS.toLocaleString("en-US")} connections)`
const loadFigure = `daemon RSS, peak under load (every connection proxied, ${CONCURRENCY} in flight)`
const memory = (d: typeof built, which: "idle" | "peak") => (which === "idle" ? median(d.idle) : d.peak)
const rows: Array<Row> = (["idle", "peak"] as const).map((which) => {
  const value = memory(built, which)
  const baseline = memory(sources, which)
  return {
    id: which === "idle" ? "daemon_rss_idle" : "daemon_rss_load",
    figure: which === "idle" ? idleFigure : loadFigure,
    kind: "memory",
    median: value,
    p99: which === "idle" ? Math.max(...built.idle) : value,
    baseline: { name: sources.name, median: baseline, p99: which === "idle" ? Math.max(...sources.idle) : baseline },
    ratio: value / baseline,
    target: { text: `≤ ${MIB_TARGET} MiB`, met: value <= MIB_TARGET }
  }
})
report(rows)

await Promise.all(daemons.map((d) => d.pool.close()))
await Promise.all([...daemons.map((d) => stop(d.child)), stop(upstream.child)])
console.log(`  done (${seconds(began)})`)
