/**
 * `switchboard key rotate` in process, on real data directories: each provider, `--json`, refusals (a running
 * daemon, flags that do not fit the provider), and what reaches stdout and stderr: never a key, a passphrase or
 * a secret, except the one key `--generate` prints, once.
 */
import { NodeServices } from "@effect/platform-node"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Sodium from "@switchboard/adapters/sodium"
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Stdio from "effect/Stdio"
import * as Stream from "effect/Stream"
import * as Terminal from "effect/Terminal"
import { TestConsole } from "effect/testing"
import * as Fs from "node:fs"
import { layerLive } from "../../src/cli/Access.ts"
import * as Main from "../../src/cli/Main.ts"
import * as KeyRotation from "../../src/KeyRotation.ts"
import { serverLayer } from "../support.ts"
import {
  base64Key,
  CANARY,
  expectMismatch,
  fast,
  type Home,
  makeHome,
  readSecrets,
  seed,
  snapshot,
  spellings
} from "./support.ts"

const { ENV_MASTER_KEY, ENV_PASSPHRASE } = Sodium.KeyProvider

const homes: Array<Home> = []
const fresh = () => {
  const home = makeHome()
  homes.push(home)
  return home
}
afterAll(() => {
  for (const home of homes) home.cleanup()
})

/** A terminal where the user types `lines`, one per prompt; what the prompts display is kept. */
const typing = (lines: ReadonlyArray<string>) => {
  let prompt = 0
  const shown: Array<string> = []
  const key = (name: string) => ({ name, ctrl: false, meta: false, shift: false })
  const terminal = Terminal.make({
    columns: Effect.succeed(80),
    rows: Effect.succeed(24),
    size: Effect.die("unused"),
    readInput: Effect.gen(function* () {
      const queue = yield* Queue.unbounded<Terminal.UserInput, Cause.Done>()
      for (const char of lines[prompt++] ?? "") yield* Queue.offer(queue, { input: Option.some(char), key: key(char) })
      yield* Queue.offer(queue, { input: Option.none(), key: key("enter") })
      return queue
    }),
    readLine: Effect.die("unused"),
    display: (text) => Effect.sync(() => void shown.push(text))
  })
  return { layer: Layer.succeed(Terminal.Terminal, terminal), shown }
}

interface Run {
  readonly stdin?: string
  readonly terminal?: ReturnType<typeof typing>
  readonly env?: Record<string, string>
}

/**
 * Runs the CLI with `process.env` holding exactly the variables the test gives (plus the data directory's socket
 * path), restored afterwards.
 */
const cli = (home: Home, argv: ReadonlyArray<string>, run: Run = {}) =>
  Effect.gen(function* () {
    const before = (yield* TestConsole.logLines).length
    const beforeErr = (yield* TestConsole.errorLines).length
    const stdio = Stdio.layerTest({
      stdin: Stream.make(new TextEncoder().encode(run.stdin ?? "")),
      stdinIsTerminal: Effect.succeed(run.terminal !== undefined)
    })
    const services = Layer.mergeAll(NodeServices.layer, stdio)
    const code = yield* Effect.acquireUseRelease(
      Effect.sync(() => {
        const saved = { ...process.env }
        for (const name of [ENV_MASTER_KEY, ENV_PASSPHRASE, "SWITCHBOARD_HOME"]) delete process.env[name]
        Object.assign(process.env, { SWITCHBOARD_SOCKET: home.paths.socket }, run.env)
        return saved
      }),
      () =>
        Main.run(["--home", home.paths.home, ...argv]).pipe(
          Effect.provide(layerLive),
          Effect.provide(run.terminal === undefined ? services : Layer.merge(services, run.terminal.layer)),
          Effect.provideService(KeyRotation.PassphraseCost, fast)
        ),
      (saved) =>
        Effect.sync(() => {
          for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name]
          Object.assign(process.env, saved)
        })
    )
    const out = (yield* TestConsole.logLines).slice(before).join("\n")
    const err = (yield* TestConsole.errorLines).slice(beforeErr).join("\n")
    return { code, out, err, all: `${out}\n${err}` }
  })

const assertNone = (text: string, secrets: ReadonlyArray<string>) => {
  for (const secret of secrets) assert.notInclude(text, secret)
}

const canaries = Object.values(CANARY)

describe("switchboard key rotate", () => {
  it.effect("key file: a new master.key; the summary names key ids, never keys or secrets", () =>
    Effect.gen(function* () {
      const home = fresh()
      yield* seed(home, {})
      const oldKey = Fs.readFileSync(home.keyFile, "utf8").trim()
      const run = yield* cli(home, ["key", "rotate"])
      assert.strictEqual(run.code, 0, run.err)
      assert.match(
        run.out,
        /^re-sealed 3 values under the new master key [0-9a-f]{16} \(was [0-9a-f]{16}\); the key file .*master\.key now holds the new key$/
      )
      assert.strictEqual(run.err, "")
      const newKey = Fs.readFileSync(home.keyFile, "utf8").trim()
      assertNone(run.all, [...spellings(oldKey), ...spellings(newKey), ...canaries])
      assert.deepStrictEqual(yield* readSecrets(home, {}), CANARY)

      const json = yield* cli(home, ["--json", "key", "rotate"])
      assert.strictEqual(json.code, 0, json.err)
      const body = JSON.parse(json.out)
      assert.deepStrictEqual(Object.keys(body).sort(), ["key_id_new", "key_id_old", "provider", "rotated"])
      assert.deepStrictEqual([body.rotated, body.provider], [3, "file"])
      assert.notStrictEqual(body.key_id_new, body.key_id_old)
      assert.strictEqual(json.err, "")
      assertNone(json.all, [...spellings(newKey), ...spellings(Fs.readFileSync(home.keyFile, "utf8").trim())])
      assert.deepStrictEqual(yield* readSecrets(home, {}), CANARY)
    })
  )

  it.effect("environment key from another variable: says what to set, prints no key", () =>
    Effect.gen(function* () {
      const home = fresh()
      const [k1, k2, k3] = [base64Key(11), base64Key(12), base64Key(13)]
      yield* seed(home, { [ENV_MASTER_KEY]: k1 })
      const run = yield* cli(home, ["key", "rotate", "--new-key-from-env", "NEW_SB_KEY"], {
        env: { [ENV_MASTER_KEY]: k1, NEW_SB_KEY: k2 }
      })
      assert.strictEqual(run.code, 0, run.err)
      assert.include(run.out, `now set ${ENV_MASTER_KEY} to the new key (the value of NEW_SB_KEY)`)
      assertNone(run.all, [...spellings(k1), ...spellings(k2), ...canaries])
      yield* expectMismatch(home, { [ENV_MASTER_KEY]: k1 })

      const json = yield* cli(home, ["--json", "key", "rotate", "--new-key-from-env", "NEXT"], {
        env: { [ENV_MASTER_KEY]: k2, NEXT: k3 }
      })
      assert.strictEqual(json.code, 0, json.err)
      assert.deepInclude(JSON.parse(json.out), { rotated: 3, provider: "env" })
      assert.include(json.err, `now set ${ENV_MASTER_KEY}`)
      assertNone(json.all, [...spellings(k2), ...spellings(k3), ...canaries])
      assert.deepStrictEqual(yield* readSecrets(home, { [ENV_MASTER_KEY]: k3 }), CANARY)
    })
  )

  it.effect("--generate: the new key is printed once, to stdout, with a warning on stderr", () =>
    Effect.gen(function* () {
      const home = fresh()
      const k1 = base64Key(21)
      yield* seed(home, { [ENV_MASTER_KEY]: k1 })
      const run = yield* cli(home, ["key", "rotate", "--generate"], { env: { [ENV_MASTER_KEY]: k1 } })
      assert.strictEqual(run.code, 0, run.err)
      const [key = "", summary = "", ...rest] = run.out.split("\n")
      assert.deepStrictEqual(rest, [])
      assert.match(key, /^[A-Za-z0-9+/]{43}=$/)
      assert.include(summary, "(printed above)")
      assert.include(run.err, "warning: the new master key follows on stdout, shown this once")
      assert.strictEqual(run.all.split(key).length, 2) // exactly once
      assertNone(run.all, [...spellings(k1), ...canaries])
      assert.deepStrictEqual(yield* readSecrets(home, { [ENV_MASTER_KEY]: key }), CANARY)

      const json = yield* cli(home, ["--json", "key", "rotate", "--generate"], { env: { [ENV_MASTER_KEY]: key } })
      assert.strictEqual(json.code, 0, json.err)
      const [first = "", ...others] = json.out.split("\n")
      const generated: string = JSON.parse(first).new_master_key
      assert.deepInclude(JSON.parse(others.join("\n")), { provider: "env", rotated: 3 })
      assert.strictEqual(json.all.split(generated).length, 2)
      assert.deepStrictEqual(yield* readSecrets(home, { [ENV_MASTER_KEY]: generated }), CANARY)
    })
  )

  it.effect("passphrase: from stdin, or typed twice at a hidden prompt; never echoed", () =>
    Effect.gen(function* () {
      const home = fresh()
      const [p1, p2, p3] = ["first passphrase 1", "second passphrase 2", "third passphrase 3"]
      yield* seed(home, { [ENV_PASSPHRASE]: p1 })
      const run = yield* cli(home, ["key", "rotate", "--new-passphrase-stdin"], {
        env: { [ENV_PASSPHRASE]: p1 },
        stdin: `${p2}\n`
      })
      assert.strictEqual(run.code, 0, run.err)
      assert.include(run.out, `now set ${ENV_PASSPHRASE} to the new passphrase`)
      assertNone(run.all, [p1, p2, ...canaries])
      assert.deepStrictEqual(yield* readSecrets(home, { [ENV_PASSPHRASE]: p2 }), CANARY)
      yield* expectMismatch(home, { [ENV_PASSPHRASE]: p1 })

      // No terminal and no --new-passphrase-stdin: refused.
      const blind = yield* cli(home, ["key", "rotate"], { env: { [ENV_PASSPHRASE]: p2 } })
      assert.strictEqual(blind.code, 2)
      assert.include(blind.err, "--new-passphrase-stdin")

      // Typed twice, differently: refused, nothing changed.
      const before = snapshot(home)
      const typo = typing([p3, `${p3}x`])
      const differ = yield* cli(home, ["key", "rotate"], { env: { [ENV_PASSPHRASE]: p2 }, terminal: typo })
      assert.strictEqual(differ.code, 2)
      assert.include(differ.err, "the two passphrases differ")
      assert.deepStrictEqual(snapshot(home), before)

      const terminal = typing([p3, p3])
      const prompted = yield* cli(home, ["key", "rotate"], { env: { [ENV_PASSPHRASE]: p2 }, terminal })
      assert.strictEqual(prompted.code, 0, prompted.err)
      assertNone([prompted.all, ...terminal.shown].join("\n"), [p2, p3, ...canaries])
      assert.deepStrictEqual(yield* readSecrets(home, { [ENV_PASSPHRASE]: p3 }), CANARY)
    })
  )

  it.effect("refuses while a daemon runs on the data directory, changing nothing", () =>
    Effect.gen(function* () {
      const home = fresh()
      yield* seed(home, {})
      const before = snapshot(home)
      yield* Layer.build(serverLayer(home.paths.socket))
      const run = yield* cli(home, ["key", "rotate"])
      assert.strictEqual(run.code, 4)
      assert.include(run.err, "keeps the current key open: stop it first (switchboard daemon stop)")
      const json = yield* cli(home, ["--json", "key", "rotate"])
      assert.strictEqual(json.code, 4)
      assert.strictEqual(JSON.parse(json.err).error.code, "daemon_running")
      assert.deepStrictEqual(snapshot(home), before)
    })
  )

  it.effect("refuses flags that do not fit the provider, or several sources, without printing a key", () =>
    Effect.gen(function* () {
      const home = fresh()
      yield* seed(home, {})
      const before = snapshot(home)
      const cases: ReadonlyArray<[ReadonlyArray<string>, string]> = [
        [["key", "rotate", "--generate"], "the key file"],
        [["key", "rotate", "--new-key-from-env", "X"], "the key file"],
        [["key", "rotate", "--generate", "--new-key-from-env", "X"], "give only one of"],
        [["--via", "daemon", "key", "rotate"], "never through the daemon"]
      ]
      for (const [argv, message] of cases) {
        const run = yield* cli(home, argv, { env: { X: base64Key(3) } })
        assert.strictEqual(run.code, 2, argv.join(" "))
        assert.include(run.err, message)
        assert.strictEqual(run.out, "")
        assertNone(run.all, spellings(base64Key(3)))
      }
      const env = fresh()
      yield* seed(env, { [ENV_MASTER_KEY]: base64Key(1) })
      const none = yield* cli(env, ["key", "rotate"], { env: { [ENV_MASTER_KEY]: base64Key(1) } })
      assert.strictEqual(none.code, 2)
      assert.include(none.err, "--new-key-from-env NAME")
      assert.deepStrictEqual(snapshot(home), before)
    })
  )
})
