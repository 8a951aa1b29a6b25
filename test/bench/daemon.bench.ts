/**
 * Whole-process figures around the daemon, everything on loopback, each server in its own process:
 * - REST proxy throughput (16 in flight) and latency (one at a time) of a GET through a connection with a bearer
 *   credential: embedded (`Proxy.request` in this process over the sealed SQLite store, as the CLI runs it) and
 *   through the daemon socket (`/v1/connections/{id}/proxy/…`), against direct `undici` requests carrying the same
 *   header to the same upstream. Target: embedded ≥ 0.7× direct throughput.
 * - daemon API `GET /v1/connectors/{id}` requests per second over the socket (16 in flight) against a bare
 *   `node:http` server answering the same JSON bytes on a socket (the ceiling). Target ≥ 0.5×.
 * - daemon RSS with 1,000 connectors and 1,000 connections at its peak under the loads above (idle, and with every
 *   connection in use: rss.bench.ts).
 *   Target ≤ 120 MiB.
 * The daemon is the real `switchboard daemon start`, on a fresh data directory seeded beforehand.
 */
/* oxlint-disable no-await-in-loop -- a benchmark measures one thing at a time, on purpose */
import * as Layers from "@switchboard/daemon/Layers"
import * as Principal from "@switchboard/core/Principal"
import * as Proxy from "@switchboard/core/Proxy"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Agent, Pool, request } from "undici"
import { atLeast, interleavedLoad, latencyRow, median, rateRow, report, type Row, rssMiB, seconds } from "./harness.ts"
import { daemon, server, sleep, stop } from "./processes.ts"

const began = performance.now()
const CONNECTORS = 1_000
const CONCURRENCY = 16
const MIB_TARGET = 120

const home = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sbb-"))
process.on("exit", () => Fs.rmSync(home, { recursive: true, force: true }))
const socket = Path.join(home, "sb.sock")
const env: NodeJS.ProcessEnv = {
  ...process.env,
  SWITCHBOARD_SOCKET: socket,
  SWITCHBOARD_MASTER_KEY: Buffer.from(new Uint8Array(32).map((_, i) => (i * 31 + 7) & 0xff)).toString("base64")
}

// --- the upstream, and the data directory seeded through the embedded service ----------------------------------

const upstream = await server<{ port: number }>("upstream")
const origin = `http://127.0.0.1:${upstream.info.port}`
const TOKEN = "ghp_bench_0123456789abcdefghijklmnopqrstuvwxyz"

const paths = Layers.resolvePaths({ home, env })
await Effect.runPromise(Layers.ensureDataDir(paths))
const embedded = ManagedRuntime.make(
  Layers.withCalls(Layers.switchboardLayer({ kind: "sqlite", paths, env }), { allowPrivateNetwork: false })
)
const principal = Layers.localPrincipal()
const asLocal = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provideService(effect, Principal.CurrentPrincipal, principal)

const { connectionId, connectorId } = await embedded.runPromise(
  asLocal(
    Effect.gen(function* () {
      const sb = yield* Switchboard.Switchboard
      let first: { connectionId: string; connectorId: string } | undefined
      for (let i = 0; i < CONNECTORS; i++) {
        const connector = yield* sb.createConnector({
          name: `api-${i}`,
          display_name: `API ${i}`,
          auth_patterns: [
            { type: "BEARER", fields: [{ field_name: "token", input_type: "password", required: true }] }
          ],
          proxy_url: `${origin}/api`,
          proxy_enabled: true
        })
        yield* sb.setCredential(connector.id, "user", { values: { token: TOKEN } })
        const connection = yield* sb.createConnection(connector.id, {
          name: `conn-${i}`,
          allow_private_network: true,
          rate_limit: { requests_per_second: 10_000, burst: 10_000 }
        })
        first ??= { connectionId: connection.id, connectorId: connector.id }
      }
      return first as { connectionId: string; connectorId: string }
    })
  )
)
const proxy = await embedded.runPromise(Effect.service(Proxy.Proxy))
console.log(`  seeded ${CONNECTORS} connectors and connections (${seconds(began)})`)

// --- the daemon --------------------------------------------------------------------------------------------------

const daemonProcess = await daemon({
  home,
  env,
  socket,
  args: ["--log-file", Path.join(home, "daemon.log")]
})
const daemonPid = daemonProcess.pid as number
await sleep(2_000)
const idleSamples: Array<number> = []
for (let i = 0; i < 10; i++) {
  idleSamples.push(rssMiB(daemonPid))
  await sleep(100)
}
const idle = median(idleSamples)
let peak = idle
const sampleRss = () => {
  peak = Math.max(peak, rssMiB(daemonPid))
}
console.log(`  daemon up, idle RSS ${idle.toFixed(1)} MiB (${seconds(began)})`)

// --- clients -------------------------------------------------------------------------------------------------------

const direct = new Agent({ connections: CONCURRENCY })
const viaSocket = new Pool("http://switchboard", { socketPath: socket, connections: CONCURRENCY })

const expectOk = async (res: {
  statusCode: number
  body: { arrayBuffer: () => Promise<ArrayBuffer>; text: () => Promise<string> }
}) => {
  if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${await res.body.text()}`)
  return res.body.arrayBuffer()
}

const callDirect = () =>
  request(`${origin}/api/ping`, { dispatcher: direct, headers: { authorization: `Bearer ${TOKEN}` } }).then(expectOk)
const callEmbedded = () =>
  embedded.runPromise(
    asLocal(
      Effect.flatMap(proxy.request(connectionId, { method: "GET", path: "/ping" }), (response) =>
        response.status === 200
          ? Stream.runDrain(response.body)
          : Effect.die(new Error(`HTTP ${response.status} from the upstream`))
      )
    )
  )
const callDaemonProxy = () =>
  viaSocket.request({ method: "GET", path: `/v1/connections/${connectionId}/proxy/ping` }).then(expectOk)

// The proxy route may not exist yet in this build of the daemon: then only the embedded figure is measured.
const proxyRoute = await viaSocket
  .request({ method: "GET", path: `/v1/connections/${connectionId}/proxy/ping` })
  .then(async (res) => {
    await res.body.dump()
    return res.statusCode === 200
  })
const names = { direct: "direct undici", embedded: "embedded Proxy", daemon: "daemon proxy" }
const proxySubjects = [
  { name: names.direct, call: callDirect },
  { name: names.embedded, call: callEmbedded },
  ...(proxyRoute ? [{ name: names.daemon, call: callDaemonProxy }] : [])
]

const rows: Array<Row> = []
const throughput = await interleavedLoad(proxySubjects, {
  rounds: 6,
  requests: 1_500,
  concurrency: CONCURRENCY,
  warmup: 600,
  during: sampleRss
})
rows.push(
  rateRow(throughput, {
    id: "proxy_throughput_embedded",
    figure: `REST proxy throughput, embedded (${CONCURRENCY} in flight)`,
    subject: names.embedded,
    baseline: names.direct,
    target: atLeast(0.7)
  })
)
if (proxyRoute) {
  rows.push(
    rateRow(throughput, {
      id: "proxy_throughput_daemon",
      figure: `REST proxy throughput, daemon socket (${CONCURRENCY} in flight)`,
      subject: names.daemon,
      baseline: names.direct
    })
  )
}
report(rows.splice(0))
console.log(`  proxy throughput done (${seconds(began)})`)

const latency = await interleavedLoad(proxySubjects, {
  rounds: 6,
  requests: 300,
  concurrency: 1,
  warmup: 100,
  during: sampleRss
})
rows.push(
  latencyRow(latency, {
    id: "proxy_latency_embedded",
    figure: "REST proxy latency, embedded (one at a time)",
    subject: names.embedded,
    baseline: names.direct
  })
)
if (proxyRoute) {
  rows.push(
    latencyRow(latency, {
      id: "proxy_latency_daemon",
      figure: "REST proxy latency, daemon socket (one at a time)",
      subject: names.daemon,
      baseline: names.direct
    })
  )
} else {
  rows.push({
    id: "proxy_daemon",
    figure: "REST proxy through the daemon socket",
    kind: "rate",
    median: null,
    p99: null,
    note: "the daemon answers no /v1/connections/{id}/proxy/… route yet",
    todo: true
  })
}
report(rows.splice(0))
console.log(`  proxy latency done (${seconds(began)})`)

// --- daemon API against a bare server on a socket ------------------------------------------------------------------

const connectorJson = await viaSocket
  .request({ method: "GET", path: `/v1/connectors/${connectorId}` })
  .then(async (res) => Buffer.from(await expectOk(res)))
const bodyFile = Path.join(home, "connector.json")
Fs.writeFileSync(bodyFile, connectorJson)
const bareSocket = Path.join(home, "bare.sock")
const bare = await server<{ socket: string }>("json", bareSocket, bodyFile)
const barePool = new Pool("http://bare", { socketPath: bareSocket, connections: CONCURRENCY })
const api = await interleavedLoad(
  [
    {
      name: "daemon API",
      call: () => viaSocket.request({ method: "GET", path: `/v1/connectors/${connectorId}` }).then(expectOk)
    },
    {
      name: "bare node:http",
      call: () => barePool.request({ method: "GET", path: `/v1/connectors/${connectorId}` }).then(expectOk)
    }
  ],
  { rounds: 6, requests: 1_500, concurrency: CONCURRENCY, warmup: 600, during: sampleRss }
)
rows.push(
  rateRow(api, {
    id: "daemon_api_get_connector",
    figure: `daemon API GET /v1/connectors/{id} (${CONCURRENCY} in flight)`,
    subject: "daemon API",
    baseline: "bare node:http",
    target: atLeast(0.5)
  })
)
console.log(`  daemon API done (${seconds(began)})`)

// The idle figure and the peak with every connection in use are rss.bench.ts's; this is the peak under the
// throughput loads above, on one connection.
rows.push({
  id: "daemon_rss_throughput_load",
  figure: "daemon RSS, peak under the proxy and API loads above",
  kind: "memory",
  median: peak,
  p99: peak,
  target: { text: `≤ ${MIB_TARGET} MiB`, met: peak <= MIB_TARGET }
})
report(rows)

await Promise.all([viaSocket.close(), barePool.close(), direct.close()])
await Promise.all([stop(daemonProcess), stop(bare.child), stop(upstream.child)])
await embedded.dispose()
console.log(`  done (${seconds(began)})`)
