/**
 * The store across process boundaries: another process writing the same file while this one reads and writes
 * (WAL + busy_timeout: no SQLITE_BUSY surfaces), and a process killed with SIGKILL in the middle of thousands of
 * writes (every write it reported as committed survives, and every row left behind decodes and opens).
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { ConnectionStore } from "@switchboard/core/ConnectionStore"
import { ConnectorStore } from "@switchboard/core/ConnectorStore"
import { CredentialVault } from "@switchboard/core/CredentialVault"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { makeConnection, makeConnector, makeCredential, makeSecrets, ORG, reveal, testId } from "../StoreSuite.ts"
import { keyA, storeLayer, tempDir, withRaw } from "./support.ts"

const dir = tempDir("processes")
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

const writerScript = Path.join(import.meta.dirname, "fixtures", "writer.ts")
const keyBase64 = Buffer.from(keyA).toString("base64")

interface Writer {
  /** Resolves once the writer has opened the store. */
  readonly ready: Promise<void>
  /** Resolves when the process has exited and its output is drained. */
  readonly done: Promise<{ lines: ReadonlyArray<string>; stderr: string; code: number | null; signal: string | null }>
}

/** Starts `writer.ts`; with `killAfter`, sends SIGKILL as soon as that many lines have been read. */
const startWriter = (args: ReadonlyArray<string>, options: { killAfter?: number; log?: string } = {}): Writer => {
  const { killAfter, log } = options
  const child = spawn(process.execPath, [writerScript, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: log === undefined ? process.env : { ...process.env, SB_WRITER_LOG: log }
  })
  const lines: Array<string> = []
  let partial = ""
  let stderr = ""
  let markReady: () => void = () => {}
  const ready = new Promise<void>((resolve) => {
    markReady = resolve
  })
  child.stdout.setEncoding("utf8")
  child.stdout.on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n")
    partial = parts.pop() ?? ""
    for (const line of parts) {
      lines.push(line)
      if (line === "ready") markReady()
      if (killAfter !== undefined && lines.length === killAfter) child.kill("SIGKILL")
    }
  })
  child.stderr.setEncoding("utf8")
  child.stderr.on("data", (chunk: string) => {
    stderr += chunk
  })
  const done = new Promise<{
    lines: ReadonlyArray<string>
    stderr: string
    code: number | null
    signal: string | null
  }>((resolve) => {
    child.on("close", (code, signal) => {
      markReady()
      resolve({ lines, stderr, code, signal })
    })
  })
  return { ready, done }
}

interface Committed {
  readonly kind: "ctr" | "cred" | "conn"
  readonly n: number
  readonly id: string
}

const committedWrites = (lines: ReadonlyArray<string>): Array<Committed> =>
  lines.flatMap((line) => {
    const match = /^(ctr|cred|conn) (\d+) ((?:ctr|cred|conn)_[0-9A-Z]{26})$/.exec(line)
    return match === null ? [] : [{ kind: match[1] as Committed["kind"], n: Number(match[2]), id: match[3] as string }]
  })

/** Every connector of an org, paging through the whole list. */
const allConnectors = (org: string) =>
  Effect.gen(function* () {
    const store = yield* ConnectorStore
    const ids: Array<string> = []
    let after: string | undefined
    for (;;) {
      const page = yield* store.list(org, { limit: 100, after })
      ids.push(...page.map((c) => c.id))
      if (page.length < 100) return ids
      after = page.at(-1)?.id
    }
  })

/** Every connection of an org visible to `user`, with its secrets opened. */
const allConnectionSecrets = (org: string, user: string) =>
  Effect.gen(function* () {
    const connections = yield* ConnectionStore
    const found = new Map<string, Record<string, string>>()
    let after: string | undefined
    for (;;) {
      const page = yield* connections.list(org, { limit: 100, after, visibleTo: user })
      for (const connection of page) {
        const secrets = yield* connections.secrets(org, connection.id)
        found.set(connection.id, { ...reveal(secrets.security), ...reveal(secrets.headers) })
      }
      if (page.length < 100) return found
      after = page.at(-1)?.id
    }
  })

describe("sqlite across processes", () => {
  it.live(
    "a process killed mid-write loses no committed write and leaves no half-written record",
    () =>
      Effect.gen(function* () {
        const filename = Path.join(dir, "crash.db")
        const org = "org_crash"
        const log = Path.join(dir, "crash.log")
        const run = yield* Effect.promise(
          () => startWriter([filename, keyBase64, org, "50000", "0"], { killAfter: 1500, log }).done
        )
        assert.strictEqual(run.signal, "SIGKILL", run.stderr)
        assert.notInclude(run.lines, "done")
        // The side file, written synchronously after each commit, is the complete record of committed writes.
        // Only whole lines count: a line cut short by the kill has no newline yet.
        const committed = committedWrites(Fs.readFileSync(log, "utf8").split("\n").slice(0, -1))
        assert.isAtLeast(committed.length, committedWrites(run.lines).length)
        assert.isAtLeast(committed.length, 1400)

        assert.strictEqual(
          withRaw(filename, (db) => db.pragma("integrity_check", { simple: true })),
          "ok"
        )
        yield* Effect.gen(function* () {
          const store = yield* ConnectorStore
          const vault = yield* CredentialVault
          const home = testId("ctr", 0)
          // Every reported write is there, whole.
          for (const write of committed) {
            if (write.kind === "ctr") {
              const connector = yield* store.get(org, write.id)
              assert.strictEqual(Option.getOrThrow(connector).name, `${org}-connector-${write.n}`)
            } else if (write.kind === "cred") {
              const credential = yield* vault.get({
                connectorId: home,
                scope: "organization",
                owner: { org },
                name: `cred-${write.n}`
              })
              assert.strictEqual(Option.getOrThrow(credential).id, write.id)
              assert.deepStrictEqual(reveal(Option.getOrThrow(credential).values), { token: `value-${write.n}` })
            }
          }
          // Every row left behind decodes and every sealed value opens: at most the one write in flight when the
          // process died went further than its report.
          const connectors = yield* allConnectors(org)
          const reported = (kind: Committed["kind"]) => committed.filter((write) => write.kind === kind).length
          assert.include([reported("ctr") + 1, reported("ctr") + 2], connectors.length)
          const credentials = yield* vault.list(home, "organization", { org })
          assert.include([reported("cred"), reported("cred") + 1], credentials.length)
          for (const credential of credentials) {
            assert.deepStrictEqual(reveal(credential.values), {
              token: `value-${credential.name.slice("cred-".length)}`
            })
          }
          const secrets = yield* allConnectionSecrets(org, "writer")
          assert.include([reported("conn"), reported("conn") + 1], secrets.size)
          for (const write of committed.filter((w) => w.kind === "conn")) {
            assert.deepStrictEqual(secrets.get(write.id), {
              token: `secret-${write.n}`,
              "x-secret": `header-${write.n}`
            })
          }
        }).pipe(Effect.provide(storeLayer(filename, keyA)))
      }),
    60_000
  )

  it.live(
    "two processes creating the same new database at once agree on one schema and one key check",
    () =>
      Effect.gen(function* () {
        const filename = Path.join(dir, "race.db")
        const writers = [
          startWriter([filename, keyBase64, "org_one", "30", "2000000"]),
          startWriter([filename, keyBase64, "org_two", "30", "3000000"])
        ]
        const runs = yield* Effect.promise(() => Promise.all(writers.map((writer) => writer.done)))
        for (const run of runs) {
          assert.strictEqual(run.code, 0, run.stderr)
          assert.strictEqual(run.lines.at(-1), "done")
        }
        assert.deepStrictEqual(
          withRaw(filename, (db) => db.prepare("SELECT key FROM meta").all()),
          [{ key: "key_check" }]
        )
        yield* Effect.gen(function* () {
          assert.strictEqual((yield* allConnectors("org_one")).length, 11)
          assert.strictEqual((yield* allConnectors("org_two")).length, 11)
        }).pipe(Effect.provide(storeLayer(filename, keyA)))
      }),
    60_000
  )

  it.live(
    "two processes read and write one file at the same time without SQLITE_BUSY",
    () =>
      Effect.gen(function* () {
        const filename = Path.join(dir, "shared.db")
        const writes = 1500
        const childOrg = "org_child"
        yield* Effect.gen(function* () {
          const store = yield* ConnectorStore
          const vault = yield* CredentialVault
          const connections = yield* ConnectionStore
          const child = startWriter([filename, keyBase64, childOrg, String(writes), "1000000", ORG])
          yield* Effect.promise(() => child.ready)

          const base = 5_000_000
          const home = makeConnector(base)
          yield* store.insert(ORG, home)
          const observed = new Set<number>()
          let seen = 0
          let cursor: string | undefined
          for (let n = 1; n <= writes; n++) {
            if (n % 3 === 0) yield* store.insert(ORG, makeConnector(base + n))
            else if (n % 3 === 1) yield* vault.put(makeCredential(base + n, home.id, { name: `cred-${n}` }))
            else yield* connections.insert(makeConnection(base + n, home.id), makeSecrets(`parent-${n}`))
            const page = yield* store.list(childOrg, { limit: 1000, after: cursor })
            seen += page.length
            cursor = page.at(-1)?.id ?? cursor
            observed.add(seen)
            // Let the event loop read the writer's output, so a full pipe never holds the writer back.
            yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
          }
          const run = yield* Effect.promise(() => child.done)
          assert.strictEqual(run.code, 0, run.stderr)
          assert.strictEqual(run.stderr, "")
          assert.strictEqual(run.lines.at(-1), "done")

          // Each process saw the other's writes arrive while it was writing its own.
          const childSaw = new Set(run.lines.filter((l) => l.startsWith("saw ")).map((l) => Number(l.slice(4))))
          const partial = (values: Set<number>, total: number) => [...values].filter((v) => v > 0 && v < total)
          assert.isAbove(
            partial(observed, writes / 3 + 1).length + partial(childSaw, writes / 3 + 1).length,
            0,
            "the two processes did not overlap"
          )

          // Everything both wrote is there, and this process opens the other's sealed values.
          assert.strictEqual((yield* allConnectors(childOrg)).length, writes / 3 + 1)
          assert.strictEqual((yield* allConnectors(ORG)).length, writes / 3 + 1)
          const childCredentials = yield* vault.list(testId("ctr", 1_000_000), "organization", { org: childOrg })
          assert.strictEqual(childCredentials.length, writes / 3)
          for (const credential of childCredentials) {
            assert.strictEqual(
              Redacted.value(credential.values.token as Redacted.Redacted<string>),
              `value-${credential.name.slice("cred-".length)}`
            )
          }
          assert.strictEqual((yield* allConnectionSecrets(childOrg, "writer")).size, writes / 3)
          assert.strictEqual((yield* vault.list(home.id, "organization", { org: ORG })).length, writes / 3)
        }).pipe(Effect.provide(storeLayer(filename, keyA)))
      }),
    60_000
  )
})
