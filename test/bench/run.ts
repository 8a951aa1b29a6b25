/**
 * Runs every `*.bench.ts` in this folder, one after another, each in its own Node process (`pnpm bench`).
 * Exits non-zero when any benchmark fails.
 */
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"

const here = import.meta.dirname
const benches = Fs.readdirSync(here)
  .filter((name) => name.endsWith(".bench.ts"))
  .sort()

let failed = 0
for (const name of benches) {
  console.log(`\n=== ${name}`)
  const result = spawnSync(process.execPath, [Path.join(here, name)], { stdio: "inherit" })
  if (result.status !== 0) {
    failed++
    console.error(`${name} failed (${result.signal ?? `exit code ${result.status}`})`)
  }
}
console.log(`\n${benches.length - failed} of ${benches.length} benchmarks passed`)
if (failed > 0) process.exitCode = 1
