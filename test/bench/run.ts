/**
 * `pnpm bench`: runs every `*.bench.ts` in this folder, each in its own Node process, one after another, then
 * prints ONE table of every figure (median, p99, the baseline measured in the same run, the ratio, the target)
 * with the machine it ran on, and writes it all to `bench-results.json` at the repository root.
 * `node test/bench/run.ts store daemon` runs only the benches whose names contain one of the words.
 * Exits non-zero when a benchmark fails. Never part of `pnpm test`.
 */
/* oxlint-disable no-await-in-loop -- a benchmark measures one thing at a time, on purpose */
import { execFileSync, spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { type Row, table } from "./harness.ts"

const here = import.meta.dirname
const root = Path.resolve(here, "..", "..")
/** The order of the table; any other bench runs after these. */
const order = ["crypto", "store", "daemon", "rss", "mcp", "coldstart"]
const only = process.argv.slice(2)
const benches = Fs.readdirSync(here)
  .filter((name) => name.endsWith(".bench.ts"))
  .filter((name) => only.length === 0 || only.some((word) => name.includes(word)))
  .sort((a, b) => {
    const rank = (name: string) => {
      const i = order.findIndex((word) => name.startsWith(word))
      return i === -1 ? order.length : i
    }
    return rank(a) - rank(b) || a.localeCompare(b)
  })

const git = (...args: ReadonlyArray<string>) => {
  try {
    return execFileSync("git", [...args], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim()
  } catch {
    return undefined
  }
}

const machine = {
  nproc: Os.availableParallelism(),
  cpu: Os.cpus()[0]?.model ?? "unknown",
  memory_gib: Math.round(Os.totalmem() / 2 ** 30),
  node: process.version,
  platform: `${Os.platform()} ${Os.release()}`,
  load_average_before: Os.loadavg().map((l) => Number(l.toFixed(2)))
}
const began = performance.now()
const startedAt = new Date().toISOString()
const outFile = Path.join(Os.tmpdir(), `sb-bench-rows-${process.pid}.jsonl`)
Fs.writeFileSync(outFile, "")

let failed = 0
const rows: Array<Row> = []
for (const name of benches) {
  console.log(`\n=== ${name}`)
  const start = performance.now()
  const result = spawnSync(process.execPath, [Path.join(here, name)], {
    stdio: "inherit",
    env: { ...process.env, SB_BENCH_OUT: outFile },
    timeout: 240_000
  })
  const produced = Fs.readFileSync(outFile, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as Row)
  Fs.writeFileSync(outFile, "")
  rows.push(...produced)
  if (result.status !== 0) {
    failed++
    const why = result.error?.message ?? result.signal ?? `exit code ${result.status}`
    console.error(`${name} failed (${why})`)
    rows.push({
      id: `${name}_failed`,
      figure: `${name} failed (${why}); its other figures are missing`,
      kind: "latency",
      median: null,
      p99: null,
      todo: true
    })
  }
  console.log(`    ${name}: ${((performance.now() - start) / 1000).toFixed(1)} s`)
}
Fs.rmSync(outFile, { force: true })

const totalSeconds = Number(((performance.now() - began) / 1000).toFixed(1))
const loadAfter = Os.loadavg().map((l) => Number(l.toFixed(2)))
const commit = git("rev-parse", "--short", "HEAD")
const dirty = (git("status", "--porcelain") ?? "") !== ""
const header =
  `${machine.nproc} × ${machine.cpu}, ${machine.memory_gib} GiB, Node ${machine.node}, ${machine.platform}; ` +
  `load average ${machine.load_average_before.join(" ")} before, ${loadAfter.join(" ")} after; ` +
  `commit ${commit ?? "?"}${dirty ? " (with uncommitted changes)" : ""}; ${totalSeconds} s`

console.log(`\n${table(rows)}\n\n${header}`)
console.log(
  "median: latency p50, or requests (operations) per second; p99: of one request's latency; ratio: subject ÷ baseline"
)

Fs.writeFileSync(
  Path.join(root, "bench-results.json"),
  `${JSON.stringify(
    {
      started_at: startedAt,
      seconds: totalSeconds,
      commit: commit ?? null,
      uncommitted_changes: dirty,
      machine: { ...machine, load_average_after: loadAfter },
      units: {
        latency: "µs (median = p50)",
        rate: "per second (median over interleaved rounds); p99 in µs of one request",
        memory: "MiB"
      },
      rows
    },
    null,
    2
  )}\n`
)
console.log(`\n${benches.length - failed} of ${benches.length} benchmarks passed · wrote bench-results.json`)
if (failed > 0) process.exitCode = 1
