/**
 * Keeps `@switchboard/core` pure: no Node built-ins or platform packages, and no ambient clock, randomness,
 * promises or exceptions. Core reaches the outside world only through services (Clock, Random, ports), so
 * every rule in it runs in-process under TestClock and fixed seeds.
 */
import { assert, describe, it } from "@effect/vitest"
import { readdirSync, readFileSync, statSync } from "node:fs"
import { builtinModules } from "node:module"
import { join, relative } from "node:path"
import { fileURLToPath } from "node:url"

interface Violation {
  readonly file: string
  readonly line: number
  readonly rule: string
  readonly text: string
}

const forbiddenPackages: ReadonlyArray<string> = [
  "better-sqlite3",
  "libsodium-wrappers",
  "libsodium-wrappers-sumo",
  "libsodium",
  "@modelcontextprotocol/sdk",
  "@effect/platform-node",
  "@effect/platform-node-shared"
]

const builtins: ReadonlySet<string> = new Set(builtinModules.map((name) => name.replace(/^node:/, "")))

/** Why a module specifier may not appear in core, or undefined when it may. */
const forbiddenImport = (specifier: string): string | undefined => {
  if (specifier.startsWith("node:")) return "node built-in"
  const head = specifier.split("/")[0] ?? specifier
  if (builtins.has(specifier) || builtins.has(head)) return "node built-in"
  for (const name of forbiddenPackages) {
    if (specifier === name || specifier.startsWith(`${name}/`)) return `platform package ${name}`
  }
  return undefined
}

const importPatterns: ReadonlyArray<RegExp> = [
  // import x from "m", import type { X } from "m", export * from "m", export { x } from "m"
  /\b(?:import|export)\b[^;"'`]*?\bfrom\s*["']([^"']+)["']/g,
  // import "m"
  /\bimport\s*["']([^"']+)["']/g,
  // import("m"), also in type positions
  /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
  // require("m"), import x = require("m")
  /\brequire\s*\(\s*["']([^"']+)["']\s*\)/g
]

const forbiddenCode: ReadonlyArray<readonly [rule: string, pattern: RegExp]> = [
  ["Date.now() (use Clock)", /\bDate\s*\.\s*now\s*\(/g],
  ["Math.random() (use Random)", /\bMath\s*\.\s*random\s*\(/g],
  ["new Date() without arguments (use Clock)", /\bnew\s+Date\s*\(\s*\)/g],
  ["async (use Effect)", /\basync\s/g],
  ["await (use Effect)", /\bawait\s/g],
  ["try { (use Effect error handling)", /\btry\s*\{/g]
]

/**
 * Blanks out comments, keeping every newline so offsets still map to the same lines, and keeping string
 * contents (import specifiers live there). Skips over string, template and regular expression literals so
 * that `//` inside them is not mistaken for a comment.
 */
const stripComments = (source: string): string => {
  let out = ""
  let i = 0
  let lastSignificant = ""
  const blank = (text: string) => text.replace(/[^\n]/g, " ")
  while (i < source.length) {
    const c = source[i] ?? ""
    const next = source[i + 1] ?? ""
    if (c === "/" && next === "/") {
      const end = source.indexOf("\n", i)
      const stop = end === -1 ? source.length : end
      out += blank(source.slice(i, stop))
      i = stop
    } else if (c === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2)
      const stop = end === -1 ? source.length : end + 2
      out += blank(source.slice(i, stop))
      i = stop
    } else if (
      c === '"' ||
      c === "'" ||
      c === "`" ||
      (c === "/" && /^$|[(,=:[!&|?{};+\-*%<>~^]$/.test(lastSignificant))
    ) {
      let j = i + 1
      let inClass = false
      while (j < source.length) {
        const d = source[j]
        if (d === "\\") {
          j += 2
          continue
        }
        if (c === "/") {
          if (d === "[") inClass = true
          else if (d === "]") inClass = false
          else if ((d === "/" && !inClass) || d === "\n") break
        } else if (d === c || (d === "\n" && c !== "`")) {
          break
        }
        j++
      }
      out += source.slice(i, j + 1)
      i = j + 1
      lastSignificant = c
    } else {
      out += c
      if (!/\s/.test(c)) lastSignificant = c
      i++
    }
  }
  return out
}

const lineOf = (source: string, index: number): number => source.slice(0, index).split("\n").length

/** Every purity violation in one source file. */
const checkSource = (file: string, source: string): ReadonlyArray<Violation> => {
  const code = stripComments(source)
  const violations: Array<Violation> = []
  for (const pattern of importPatterns) {
    for (const match of code.matchAll(pattern)) {
      const specifier = match[1] ?? ""
      const why = forbiddenImport(specifier)
      if (why !== undefined) {
        violations.push({ file, line: lineOf(code, match.index), rule: `imports ${why}`, text: specifier })
      }
    }
  }
  for (const [rule, pattern] of forbiddenCode) {
    for (const match of code.matchAll(pattern)) {
      violations.push({ file, line: lineOf(code, match.index), rule, text: match[0].trim() })
    }
  }
  return violations
}

const sourceFiles = (dir: string): ReadonlyArray<string> =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return sourceFiles(path)
    return /\.(?:[cm]?ts|tsx|[cm]?js|jsx)$/.test(name) ? [path] : []
  })

const coreSrc = fileURLToPath(new URL("../src", import.meta.url))

const format = (violations: ReadonlyArray<Violation>): string =>
  violations.map((v) => `${v.file}:${v.line}: ${v.rule}: ${v.text}`).join("\n")

describe("Purity", () => {
  it("packages/core/src imports no platform code and uses no ambient effects", () => {
    const files = sourceFiles(coreSrc)
    assert.isAbove(files.length, 0, "found no source files in packages/core/src")
    const violations = files.flatMap((path) =>
      checkSource(relative(join(coreSrc, "..", "..", ".."), path), readFileSync(path, "utf8"))
    )
    assert.strictEqual(violations.length, 0, `core must stay pure:\n${format(violations)}`)
  })

  describe("checkSource", () => {
    const rules = (source: string) => checkSource("x.ts", source).map((v) => v.rule)

    it("flags Node built-ins, by scheme and by bare name, in every import form", () => {
      const source = [
        `import * as fs from "node:fs"`,
        `import { join } from "path"`,
        `import type { Hash } from "crypto"`,
        `import { readFile } from "fs/promises"`,
        `export * from "node:net"`,
        `export { request } from "http"`,
        `import "child_process"`,
        `const os = await import("os")`,
        `const cp = require("node:child_process")`,
        `type S = import("node:stream").Readable`,
        `import {`,
        `  createServer`,
        `} from "node:https"`
      ].join("\n")
      const found = checkSource("x.ts", source).filter((v) => v.rule === "imports node built-in")
      assert.deepStrictEqual(
        found.map((v) => v.text).sort(),
        [
          "child_process",
          "crypto",
          "fs/promises",
          "http",
          "node:child_process",
          "node:fs",
          "node:https",
          "node:net",
          "node:stream",
          "os",
          "path"
        ].sort()
      )
      assert.strictEqual(found.find((v) => v.text === "node:https")?.line, 11)
    })

    it("flags platform packages and their sub-paths", () => {
      const source = [
        `import Database from "better-sqlite3"`,
        `import sodium from "libsodium-wrappers"`,
        `import { Client } from "@modelcontextprotocol/sdk/client/index.js"`,
        `import * as NodeRuntime from "@effect/platform-node/NodeRuntime"`,
        `import { layer } from "@effect/platform-node"`
      ].join("\n")
      assert.strictEqual(checkSource("x.ts", source).length, 5)
    })

    it("flags ambient time, randomness, promises and exceptions", () => {
      assert.deepStrictEqual(rules("const t = Date.now()"), ["Date.now() (use Clock)"])
      assert.deepStrictEqual(rules("const r = Math.random()"), ["Math.random() (use Random)"])
      assert.deepStrictEqual(rules("const d = new Date()"), ["new Date() without arguments (use Clock)"])
      assert.deepStrictEqual(rules("const f = async () => 1"), ["async (use Effect)"])
      assert.deepStrictEqual(rules("function* g() { const x = await y }"), ["await (use Effect)"])
      assert.deepStrictEqual(rules("try {\n  f()\n} catch {}"), ["try { (use Effect error handling)"])
    })

    it("accepts pure code, and ignores what comments say", () => {
      const source = [
        `/** Never call Date.now() or Math.random() here; no async, no await, no try { }. */`,
        `import * as Effect from "effect/Effect"`,
        `import type { Schema } from "effect"`,
        `import * as HttpClient from "effect/unstable/http/HttpClient"`,
        `import { make } from "./internal/pathTemplate.ts"`,
        `import { fsx } from "fsx"`,
        `// import * as fs from "node:fs"`,
        `const url = "https://example.com/path" // a URL is not a comment`,
        `const re = /\\/\\/[a-z"']+/g`,
        `const at = new Date(0)`,
        `const now = Effect.clockWith((clock) => clock.currentTimeMillis)`,
        `const isAsync = true`,
        `const awaitable = 1`,
        `const retry = { times: 3 }`
      ].join("\n")
      assert.deepStrictEqual(checkSource("x.ts", source), [])
    })

    it("still sees code after strings and regular expressions that contain comment markers", () => {
      const source = [`const a = "//"`, `const b = /["']/`, `const c = Date.now()`].join("\n")
      assert.deepStrictEqual(checkSource("x.ts", source), [
        { file: "x.ts", line: 3, rule: "Date.now() (use Clock)", text: "Date.now(" }
      ])
    })
  })
})
