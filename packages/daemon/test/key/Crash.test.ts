/**
 * Rotations of the key file killed for real (SIGKILL, in a child process) before and after their commit: the next
 * open through the real layers undoes the first (the leftover master.key.next is removed, the old key stays) and
 * finishes the second (master.key.next becomes master.key), and every secret opens.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Sodium from "@switchboard/adapters/sodium"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Layers from "../../src/Layers.ts"
import { CANARY, type Home, makeHome, readSecrets, seed } from "./support.ts"

const fixture = new URL("./fixtures/killedRotation.ts", import.meta.url).pathname

const homes: Array<Home> = []
afterAll(() => {
  for (const home of homes) home.cleanup()
})

const runKilled = (home: Home, point: string) =>
  Effect.promise(
    () =>
      new Promise<{ signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) => {
        const child = ChildProcess.spawn(process.execPath, [fixture, home.paths.home, home.paths.database, point], {
          env: { PATH: process.env.PATH ?? "" },
          stdio: ["ignore", "pipe", "pipe"]
        })
        let stdout = ""
        let stderr = ""
        child.stdout.on("data", (chunk: Buffer) => {
          stdout += chunk.toString("utf8")
        })
        child.stderr.on("data", (chunk: Buffer) => {
          stderr += chunk.toString("utf8")
        })
        child.once("close", (_code, signal) => resolve({ signal, stdout, stderr }))
      })
  )

const fileKeyId = (path: string) => Effect.map(Sodium.KeyProvider.fromFile(path), (key) => key.id)

describe("a key rotation killed with SIGKILL", () => {
  for (const point of ["before-commit", "after-commit"] as const) {
    it.live(
      `${point}: the next open settles it and every secret opens`,
      () =>
        Effect.gen(function* () {
          const home = makeHome()
          homes.push(home)
          yield* seed(home, {})
          const oldId = yield* fileKeyId(home.keyFile)
          const pending = `${home.keyFile}${Sodium.KeyProvider.NEXT_SUFFIX}`

          const killed = yield* runKilled(home, point)
          assert.strictEqual(killed.signal, "SIGKILL", killed.stderr)
          const nextId = killed.stdout.trim()
          assert.match(nextId, /^[0-9a-f]{16}$/)
          assert.strictEqual(yield* fileKeyId(pending), nextId)
          assert.strictEqual(yield* fileKeyId(home.keyFile), oldId)

          yield* Effect.scoped(Layer.build(Layers.storeLayer({ kind: "sqlite", paths: home.paths, env: {} })))
          assert.isFalse(Fs.existsSync(pending))
          assert.strictEqual(yield* fileKeyId(home.keyFile), point === "before-commit" ? oldId : nextId)
          assert.deepStrictEqual(yield* readSecrets(home, {}), CANARY)
        }),
      30_000
    )
  }
})
