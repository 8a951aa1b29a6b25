/**
 * Debian's Chromium driven by playwright-core, headless, with a fresh profile per launch. Tests that need it call
 * `unavailable()` first: it says why Chromium cannot start here, and they skip with that message, unless
 * `SWITCHBOARD_REQUIRE_CHROMIUM=1` (set by `.ci/run`, which installs it) makes a missing browser an error.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { type BrowserContext, chromium } from "playwright-core"

export const executablePath = "/usr/bin/chromium"

/** Why Chromium cannot run here, or `undefined` when it can. Throws when CI requires it and it is missing. */
export const unavailable = (): string | undefined => {
  if (Fs.existsSync(executablePath)) return undefined
  const why = `${executablePath} not found: install Debian's chromium package (apt-get install -y chromium)`
  if (process.env.SWITCHBOARD_REQUIRE_CHROMIUM === "1") throw new Error(`${why} (SWITCHBOARD_REQUIRE_CHROMIUM=1)`)
  return why
}

export interface Launched {
  readonly context: BrowserContext
  readonly close: () => Promise<void>
}

/** Launch headless Chromium with a throwaway profile (removed on close). */
export const launch = async (): Promise<Launched> => {
  const profile = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sb-chromium-"))
  // A persistent context on a fresh directory is how playwright takes `--user-data-dir`.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync"
    ]
  })
  return {
    context,
    close: async () => {
      await context.close()
      Fs.rmSync(profile, { recursive: true, force: true })
    }
  }
}

/** Where screenshots go (git-ignored). */
export const screenshotDir = Path.join(Path.dirname(new URL(import.meta.url).pathname), "screenshots")
