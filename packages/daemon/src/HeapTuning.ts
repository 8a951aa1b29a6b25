/**
 * V8 heap settings of the long-running daemon, applied as it starts (before its heap has grown), whichever entry
 * starts it (`switchboard daemon start`, `main.ts`). Under load the default heuristics let the young generation grow
 * to 2 × 16 MiB and the old generation fill with garbage for a long while before a full collection: with 1,000
 * connectors and connections proxied 16 at a time (test/bench/rss.bench.ts), the peak RSS was 222 MiB with the
 * defaults and 169 MiB with these, at the same requests per second within the noise of the run. Live data under
 * that load is about 35 MiB of heap, so collecting sooner costs little. `--optimize-for-size` went lower (137 MiB)
 * but slowed the daemon by a fifth, so it is not used. A flag given on the command line or in NODE_OPTIONS wins.
 */
import * as V8 from "node:v8"

/** Young generation at most 2 × 4 MiB; the old generation grows by 10% between full collections. */
export const daemonFlags: ReadonlyArray<string> = ["--max-semi-space-size=4", "--heap-growing-percent=10"]

const given = (flag: string) => {
  const name = flag.split("=", 1)[0] as string
  return [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/u)].some(
    (arg) => arg === name || arg.startsWith(`${name}=`) || arg.replaceAll("_", "-").startsWith(name)
  )
}

/** Apply `daemonFlags` to this process, except those it was started with already. */
export const applyDaemonFlags = (): void => {
  for (const flag of daemonFlags) if (!given(flag)) V8.setFlagsFromString(flag)
}
