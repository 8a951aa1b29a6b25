/**
 * What every benchmark shares: one result row per figure, statistics (median, p99), the interleaved in-process
 * measurement (tinybench slices, subject and baseline alternating after a warm-up), the concurrent load loop for
 * whole-process figures, RSS sampling, and handing the rows to `run.ts` (or printing them when a bench runs alone).
 *
 * Every figure is a ratio to a baseline measured in the same run, interleaved, so it holds on a noisy shared
 * machine where absolute numbers move from one minute to the next.
 */
/* oxlint-disable no-await-in-loop -- a benchmark measures one thing at a time, on purpose */
import * as Fs from "node:fs"
import { Bench } from "tinybench"

/** One line of the table. */
export interface Row {
  /** Stable key, for comparing runs. */
  readonly id: string
  readonly figure: string
  /** What the headline number is: a latency (lower is better), a rate (higher is better) or a size. */
  readonly kind: "latency" | "rate" | "memory"
  /** The headline: median latency in µs, median rate per second, or MiB. */
  readonly median: number | null
  /** The p99 latency in µs (for rates too: of one request or operation), or the peak MiB. */
  readonly p99: number | null
  readonly baseline?: {
    readonly name: string
    readonly median: number | null
    readonly p99: number | null
  }
  /** Subject ÷ baseline of the headline median (a rate ratio for rates, a latency ratio for latencies). */
  readonly ratio?: number | null
  readonly target?: { readonly text: string; readonly met: boolean | null }
  readonly note?: string
  /** A figure whose subject does not exist yet (or does not work yet). */
  readonly todo?: boolean
}

// ---------------------------------------------------------------------------------------------------------------
// Statistics

/** Nearest-rank percentile of an ascending array. */
export const percentile = (sorted: ReadonlyArray<number>, p: number): number => {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.ceil((p / 100) * sorted.length) - 1
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))] as number
}

export const ascending = (values: Iterable<number>): Array<number> => [...values].sort((a, b) => a - b)

export const median = (values: Iterable<number>): number => percentile(ascending(values), 50)

export interface Summary {
  /** Median of per-operation latencies, µs. */
  readonly p50: number
  /** p99 of per-operation latencies, µs. */
  readonly p99: number
  /** Median over slices (rounds) of operations per second. */
  readonly rate: number
  readonly samples: number
}

// ---------------------------------------------------------------------------------------------------------------
// In-process figures: tinybench slices, interleaved

export interface MicroTask {
  readonly name: string
  /** One iteration: `batch` operations. Return a promise for async work. */
  readonly fn: () => unknown
  /** Operations per iteration (samples are divided by it); 1 by default. */
  readonly batch?: number
}

export interface MicroOptions {
  /** Interleaved rounds; each runs every task once, in an order that rotates. */
  readonly rounds: number
  /** Time budget of one task in one round, ms. */
  readonly sliceMs: number
  /** Warm-up per task before the first round, ms (JIT, caches). */
  readonly warmupMs: number
  /** Tasks are synchronous: run with `runSync`. */
  readonly sync?: boolean
}

/**
 * Measure tasks side by side: a warm-up of each, then `rounds` rounds in which every task runs one tinybench
 * slice of `sliceMs`, the order rotating each round so no task always runs right after another. Latencies are
 * pooled over the rounds; the rate is the median of the per-slice rates.
 */
export const interleaved = async (
  tasks: ReadonlyArray<MicroTask>,
  options: MicroOptions
): Promise<ReadonlyMap<string, Summary>> => {
  const latencies = new Map<string, Array<number>>(tasks.map((t) => [t.name, []]))
  const rates = new Map<string, Array<number>>(tasks.map((t) => [t.name, []]))
  const slice = async (round: ReadonlyArray<MicroTask>, time: number, keep: boolean) => {
    const bench = new Bench({
      time,
      iterations: 8,
      warmup: false,
      retainSamples: true,
      throws: true
    })
    for (const task of round) bench.add(task.name, task.fn)
    const done = options.sync === true ? bench.runSync() : await bench.run()
    if (!keep) return
    for (const result of done) {
      const task = tasks.find((t) => t.name === result.name) as MicroTask
      const batch = task.batch ?? 1
      const r = result.result
      if (r.state !== "completed") throw new Error(`${task.name}: ${r.state}`)
      const samples = r.latency.samples ?? []
      for (const ms of samples) latencies.get(task.name)?.push((ms * 1000) / batch)
      rates.get(task.name)?.push((samples.length * batch * 1000) / r.totalTime)
    }
  }
  await slice(tasks, options.warmupMs, false)
  for (let round = 0; round < options.rounds; round++) {
    const shift = round % tasks.length
    await slice([...tasks.slice(shift), ...tasks.slice(0, shift)], options.sliceMs, true)
  }
  return new Map(
    tasks.map((t) => {
      const sorted = ascending(latencies.get(t.name) ?? [])
      return [
        t.name,
        {
          p50: percentile(sorted, 50),
          p99: percentile(sorted, 99),
          rate: median(rates.get(t.name) ?? []),
          samples: sorted.length
        }
      ]
    })
  )
}

// ---------------------------------------------------------------------------------------------------------------
// Whole-process figures: a bounded-concurrency request loop, interleaved rounds

export interface LoadSubject {
  readonly name: string
  /** One request, resolved once its whole response has been read. */
  readonly call: () => Promise<unknown>
}

export interface LoadOptions {
  readonly rounds: number
  /** Requests per round and subject. */
  readonly requests: number
  readonly concurrency: number
  /** Requests per subject before the first round (not measured). */
  readonly warmup: number
  /** Called while each measured round runs (RSS sampling). */
  readonly during?: (() => void) | undefined
}

const runLoad = async (call: () => Promise<unknown>, requests: number, concurrency: number) => {
  const times: Array<number> = []
  let issued = 0
  const worker = async () => {
    while (issued < requests) {
      issued++
      const start = performance.now()
      await call()
      times.push((performance.now() - start) * 1000)
    }
  }
  const began = performance.now()
  await Promise.all(Array.from({ length: Math.min(concurrency, requests) }, worker))
  return { elapsedMs: performance.now() - began, times }
}

/**
 * Rounds of `requests` requests at `concurrency` for each subject in turn (order rotating), after a warm-up of
 * each. Rate: median over rounds of requests per second; latencies pooled.
 */
export const interleavedLoad = async (
  subjects: ReadonlyArray<LoadSubject>,
  options: LoadOptions
): Promise<ReadonlyMap<string, Summary>> => {
  for (const s of subjects) await runLoad(s.call, options.warmup, options.concurrency)
  const latencies = new Map<string, Array<number>>(subjects.map((s) => [s.name, []]))
  const rates = new Map<string, Array<number>>(subjects.map((s) => [s.name, []]))
  for (let round = 0; round < options.rounds; round++) {
    const shift = round % subjects.length
    for (const s of [...subjects.slice(shift), ...subjects.slice(0, shift)]) {
      const timer = options.during === undefined ? undefined : setInterval(options.during, 50)
      const { elapsedMs, times } = await runLoad(s.call, options.requests, options.concurrency)
      if (timer !== undefined) clearInterval(timer)
      latencies.get(s.name)?.push(...times)
      rates.get(s.name)?.push((options.requests * 1000) / elapsedMs)
    }
  }
  return new Map(
    subjects.map((s) => {
      const sorted = ascending(latencies.get(s.name) ?? [])
      return [
        s.name,
        {
          p50: percentile(sorted, 50),
          p99: percentile(sorted, 99),
          rate: median(rates.get(s.name) ?? []),
          samples: sorted.length
        }
      ]
    })
  )
}

// ---------------------------------------------------------------------------------------------------------------
// Rows from summaries

const get = (summaries: ReadonlyMap<string, Summary>, name: string): Summary => {
  const s = summaries.get(name)
  if (s === undefined) throw new Error(`no summary for ${name}`)
  return s
}

/** A latency row: p50 and p99 of subject and baseline, ratio of the p50s. */
export const latencyRow = (
  summaries: ReadonlyMap<string, Summary>,
  row: {
    id: string
    figure: string
    subject: string
    baseline: string
    target?: ((ratio: number, s: Summary) => NonNullable<Row["target"]>) | undefined
    note?: string | undefined
  }
): Row => {
  const s = get(summaries, row.subject)
  const b = get(summaries, row.baseline)
  const ratio = s.p50 / b.p50
  return {
    id: row.id,
    figure: row.figure,
    kind: "latency",
    median: s.p50,
    p99: s.p99,
    baseline: { name: row.baseline, median: b.p50, p99: b.p99 },
    ratio,
    ...(row.target === undefined ? {} : { target: row.target(ratio, s) }),
    ...(row.note === undefined ? {} : { note: row.note })
  }
}

/** A rate row: the median rate of subject and baseline (p99 is of one request's latency), ratio of the rates. */
export const rateRow = (
  summaries: ReadonlyMap<string, Summary>,
  row: {
    id: string
    figure: string
    subject: string
    baseline: string
    target?: ((ratio: number) => NonNullable<Row["target"]>) | undefined
    note?: string | undefined
  }
): Row => {
  const s = get(summaries, row.subject)
  const b = get(summaries, row.baseline)
  const ratio = s.rate / b.rate
  return {
    id: row.id,
    figure: row.figure,
    kind: "rate",
    median: s.rate,
    p99: s.p99,
    baseline: { name: row.baseline, median: b.rate, p99: b.p99 },
    ratio,
    ...(row.target === undefined ? {} : { target: row.target(ratio) }),
    ...(row.note === undefined ? {} : { note: row.note })
  }
}

export const atLeast = (min: number) => (ratio: number) => ({ text: `≥ ${min}×`, met: ratio >= min })
export const atMost = (max: number) => (ratio: number) => ({ text: `≤ ${max}×`, met: ratio <= max })

export const todoRow = (id: string, figure: string, target: string, note: string): Row => ({
  id,
  figure,
  kind: "latency",
  median: null,
  p99: null,
  target: { text: target, met: null },
  note,
  todo: true
})

// ---------------------------------------------------------------------------------------------------------------
// Memory

/** Resident set size of a process, MiB (Linux /proc). */
export const rssMiB = (pid: number): number => {
  const status = Fs.readFileSync(`/proc/${pid}/status`, "utf8")
  const kb = /^VmRSS:\s+(\d+)\s+kB/mu.exec(status)?.[1]
  if (kb === undefined) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(kb) / 1024
}

// ---------------------------------------------------------------------------------------------------------------
// Output

const group = (value: number, digits = 0) =>
  value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })

/** A latency given in µs, in the unit that reads best. */
export const duration = (us: number | null): string => {
  if (us === null || !Number.isFinite(us)) return "—"
  if (us < 1) return `${us.toFixed(2)} µs`
  if (us < 100) return `${us.toFixed(1)} µs`
  if (us < 10_000) return `${group(us)} µs`
  if (us < 10_000_000) return `${group(us / 1000, 1)} ms`
  return `${group(us / 1_000_000, 2)} s`
}

const headline = (kind: Row["kind"], value: number | null): string => {
  if (value === null || !Number.isFinite(value)) return "—"
  if (kind === "rate") return `${group(value)}/s`
  if (kind === "memory") return `${group(value, 1)} MiB`
  return duration(value)
}

const tail = (kind: Row["kind"], value: number | null): string =>
  kind === "memory" ? headline(kind, value) : duration(value)

/** The table, as GitHub Markdown. */
export const table = (rows: ReadonlyArray<Row>): string => {
  const lines = [
    "| figure | median | p99 | baseline | baseline median | baseline p99 | ratio | target | met |",
    "|---|--:|--:|---|--:|--:|--:|---|:-:|"
  ]
  for (const r of rows) {
    const met = r.target?.met === true ? "✅" : r.target?.met === false ? "❌" : r.todo === true ? "TODO" : "—"
    const figure = r.note === undefined ? r.figure : `${r.figure} — ${r.note}`
    lines.push(
      `| ${figure} | ${headline(r.kind, r.median)} | ${tail(r.kind, r.p99)} | ${r.baseline?.name ?? "—"} | ` +
        `${r.baseline === undefined ? "—" : headline(r.kind, r.baseline.median)} | ` +
        `${r.baseline === undefined ? "—" : tail(r.kind, r.baseline.p99)} | ` +
        `${r.ratio === undefined || r.ratio === null ? "—" : `${r.ratio.toFixed(2)}×`} | ${r.target?.text ?? "—"} | ${met} |`
    )
  }
  return lines.join("\n")
}

/**
 * Hand the rows to `run.ts` (the file `SB_BENCH_OUT` names), or print them when this bench runs alone. Rows are
 * appended as they come, so a bench that fails half-way still reports what it measured.
 */
export const report = (rows: ReadonlyArray<Row>): void => {
  const out = process.env.SB_BENCH_OUT
  if (out !== undefined && out !== "") {
    for (const row of rows) Fs.appendFileSync(out, `${JSON.stringify(row)}\n`)
  }
  for (const row of rows) {
    const ratio = row.ratio === undefined || row.ratio === null ? "" : ` · ${row.ratio.toFixed(2)}×`
    console.log(`  ${row.figure}: ${headline(row.kind, row.median)}${ratio}${row.todo === true ? " (TODO)" : ""}`)
  }
}

/** Elapsed seconds since `since` (performance.now()), for progress lines. */
export const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`
