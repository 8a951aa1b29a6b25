#!/usr/bin/env node
/**
 * The `switchboard` binary, in plain JavaScript so that starting it never loads Node's TypeScript stripper.
 *
 * Runs the build of the CLI (../dist/bundle, made by `pnpm build`, which `pnpm install` runs) while it is fresh,
 * that is while it is where it was built and every file it was built from still has the size and mtime its manifest
 * lists; otherwise, or with
 * SWITCHBOARD_FROM_SOURCES=1, runs the TypeScript sources (../src/cli/Run.ts), so an edit takes effect at once and
 * a stale build is never used. Either way Node's module compile cache is on (in its default directory;
 * NODE_DISABLE_COMPILE_CACHE=1 turns it off), so a later start reuses the compiled code instead of parsing it again.
 */
import * as Fs from "node:fs"
import * as Module from "node:module"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"

Module.enableCompileCache?.()

const packageDir = Path.join(import.meta.dirname, "..")
const bundleDir = Path.join(packageDir, "dist", "bundle")

/** The built entry's URL, when the build exists and every file it was built from is unchanged. */
const freshBuild = () => {
  try {
    /** @type {{ dir: string, entry: string, files: Array<{ path: string, size: number, mtimeMs: number }> }} */
    const manifest = JSON.parse(Fs.readFileSync(Path.join(bundleDir, "manifest.json"), "utf8"))
    // The build names files by absolute path: a checkout moved elsewhere runs its sources until it is rebuilt.
    if (manifest.dir !== packageDir) return undefined
    for (const file of manifest.files) {
      const stat = Fs.statSync(Path.join(packageDir, file.path), { throwIfNoEntry: false })
      if (stat === undefined || stat.size !== file.size || stat.mtimeMs !== file.mtimeMs) return undefined
    }
    return pathToFileURL(Path.join(bundleDir, manifest.entry)).href
  } catch {
    return undefined
  }
}

const built = process.env.SWITCHBOARD_FROM_SOURCES === "1" ? undefined : freshBuild()
await import(built ?? "../src/cli/Run.ts")
