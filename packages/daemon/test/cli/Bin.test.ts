/**
 * The `switchboard` binary's start-up choices: the launcher (`bin/switchboard.js`) runs the build only while every
 * file its manifest lists is unchanged, else the sources, never a stale build; `Runner.isMcp` sends only an `mcp`
 * command line to the lean command tree, and `Runner.isDaemonStart` tells the process that runs the daemon. The launcher is exercised as a real process on a package laid out
 * in a temporary directory (its own copy, a build and sources that say which of them ran).
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { isDaemonStart, isMcp } from "../../src/cli/Runner.ts"

const launcher = Path.join(import.meta.dirname, "..", "..", "bin", "switchboard.js")

/** A package dir with the launcher, a build printing "build ARGS", sources printing "sources ARGS", a manifest. */
const layout = () => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sb-bin-"))
  const write = (file: string, text: string) => {
    Fs.mkdirSync(Path.dirname(Path.join(dir, file)), { recursive: true })
    Fs.writeFileSync(Path.join(dir, file), text)
  }
  write("bin/switchboard.js", Fs.readFileSync(launcher, "utf8"))
  write("package.json", JSON.stringify({ type: "module" }))
  write("src/cli/Run.ts", 'console.log("sources", process.argv.slice(2).join(" "))\n')
  write("src/Thing.ts", "export const thing = 1\n")
  write("dist/bundle/switchboard.js", 'console.log("build", process.argv.slice(2).join(" "))\n')
  const manifest = () => {
    const files = ["src/Thing.ts", "src/cli/Run.ts"].map((path) => {
      const stat = Fs.statSync(Path.join(dir, path))
      return { path, size: stat.size, mtimeMs: stat.mtimeMs }
    })
    write("dist/bundle/manifest.json", JSON.stringify({ dir, entry: "switchboard.js", files }))
  }
  manifest()
  const run = (env: NodeJS.ProcessEnv = {}) =>
    ChildProcess.execFileSync(process.execPath, [Path.join(dir, "bin", "switchboard.js"), "mcp", "--x"], {
      encoding: "utf8",
      env: { ...process.env, SWITCHBOARD_FROM_SOURCES: "", ...env }
    }).trim()
  return { dir, write, manifest, run }
}
const packages: Array<string> = []
const withPackage = (test: (pkg: ReturnType<typeof layout>) => void) => () => {
  const pkg = layout()
  packages.push(pkg.dir)
  test(pkg)
}
afterAll(() => {
  for (const dir of packages) Fs.rmSync(dir, { recursive: true, force: true })
})

describe("the switchboard launcher", () => {
  it(
    "runs the build while every file it was built from is unchanged, with the arguments",
    withPackage((pkg) => {
      assert.strictEqual(pkg.run(), "build mcp --x")
    })
  )

  it(
    "runs the sources once a source file changes (content or only its mtime), until the build is redone",
    withPackage((pkg) => {
      pkg.write("src/Thing.ts", "export const thing = 2\n")
      assert.strictEqual(pkg.run(), "sources mcp --x")
      pkg.manifest()
      assert.strictEqual(pkg.run(), "build mcp --x")
      const later = new Date(Date.now() + 5_000)
      Fs.utimesSync(Path.join(pkg.dir, "src", "Thing.ts"), later, later)
      assert.strictEqual(pkg.run(), "sources mcp --x")
    })
  )

  it(
    "runs the sources when a listed file is gone, the manifest is missing or unreadable, or when asked to",
    withPackage((pkg) => {
      assert.strictEqual(pkg.run({ SWITCHBOARD_FROM_SOURCES: "1" }), "sources mcp --x")
      Fs.rmSync(Path.join(pkg.dir, "src", "Thing.ts"))
      assert.strictEqual(pkg.run(), "sources mcp --x")
      pkg.write("dist/bundle/manifest.json", "{ not json")
      assert.strictEqual(pkg.run(), "sources mcp --x")
      Fs.rmSync(Path.join(pkg.dir, "dist"), { recursive: true })
      assert.strictEqual(pkg.run(), "sources mcp --x")
    })
  )

  it(
    "runs the sources of a checkout moved elsewhere (the build names files by absolute path)",
    withPackage((pkg) => {
      const moved = `${pkg.dir}-moved`
      packages.push(moved)
      Fs.renameSync(pkg.dir, moved)
      const out = ChildProcess.execFileSync(process.execPath, [Path.join(moved, "bin", "switchboard.js"), "mcp"], {
        encoding: "utf8",
        env: { ...process.env, SWITCHBOARD_FROM_SOURCES: "" }
      })
      assert.strictEqual(out.trim(), "sources mcp")
    })
  )
})

describe("Runner.isMcp", () => {
  it("is true when mcp is the command, after any root flags and their values", () => {
    for (const argv of [
      ["mcp"],
      ["mcp", "--connection", "github"],
      ["--home", "/tmp/x", "mcp"],
      ["--home=/tmp/x", "--via", "embedded", "--json", "mcp", "--help"],
      ["--log-level", "debug", "mcp"]
    ]) {
      assert.isTrue(isMcp(argv), argv.join(" "))
    }
  })

  it("is false for every other command line, and when anything else comes before the command", () => {
    for (const argv of [
      [],
      ["connectors", "list"],
      ["--home", "mcp", "connectors"],
      ["--help", "mcp"],
      ["--completions", "bash", "mcp"],
      ["--version"],
      ["--unknown", "mcp"],
      ["daemon", "mcp"]
    ]) {
      assert.isFalse(isMcp(argv), argv.join(" "))
    }
  })
})

describe("Runner.isDaemonStart", () => {
  it("is true for the process that runs the daemon, false for the one that detaches it and for other commands", () => {
    assert.isTrue(isDaemonStart(["daemon", "start"]))
    assert.isTrue(isDaemonStart(["--home", "/tmp/x", "daemon", "start", "--store", "sqlite"]))
    assert.isFalse(isDaemonStart(["daemon", "start", "--detach"]))
    assert.isFalse(isDaemonStart(["daemon", "status"]))
    assert.isFalse(isDaemonStart(["mcp"]))
    assert.isFalse(isDaemonStart(["--help", "daemon", "start"]))
  })
})
