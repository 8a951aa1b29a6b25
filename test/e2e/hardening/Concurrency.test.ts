/**
 * The daemon process and two embedded processes on one data directory, all updating one connector and creating
 * their own at the same time. Optimistic concurrency: every update that was acknowledged made its own version
 * (no two share one, none is lost: the final version is 1 + the acknowledged updates, and every version is
 * readable), an update that lost the race is refused (never applied silently), and no writer fails with
 * SQLITE_BUSY or any other store error. The loser of a race is answered 409 `version_conflict`.
 */
import { spawn } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, assert, describe, it } from "vitest"
import { killAll, sandbox, startDaemon } from "../daemon/harness.ts"
import type { WriteResult } from "./embeddedWriter.ts"
import { json, send } from "./support.ts"

const here = Path.dirname(fileURLToPath(import.meta.url))
const box = sandbox()
afterAll(() => {
  killAll()
  box.cleanup()
})

const COUNT = 25

const embedded = (tag: string) =>
  new Promise<Array<WriteResult>>((resolve, reject) => {
    const child = spawn(process.execPath, [Path.join(here, "embeddedWriter.ts"), box.home, tag, String(COUNT)], {
      env: box.env,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let out = ""
    let err = ""
    child.stdout.on("data", (c: Buffer) => (out += c.toString("utf8")))
    child.stderr.on("data", (c: Buffer) => (err += c.toString("utf8")))
    child.on("exit", (code) =>
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`${tag} exited ${code}: ${err}`))
    )
  })

export const figures = { writes: 0, acknowledgedUpdates: 0, refusedUpdates: 0, busy: 0, lost: 0 }

describe("the daemon and two embedded processes on one store", () => {
  it("resolve concurrent updates of one connector without losing one, and never fail with SQLITE_BUSY", async () => {
    await startDaemon(box)
    const created = await send(box.socket, {
      method: "POST",
      path: "/v1/connectors",
      body: JSON.stringify({ name: "shared", display_name: "v1", auth_patterns: [], proxy_url: "https://a.invalid/" })
    })
    assert.strictEqual(created.status, 201, created.text)
    const id = json(created).id

    const viaDaemon = async (): Promise<Array<WriteResult>> =>
      Promise.all(
        Array.from({ length: COUNT }, async (_, i) => {
          const display = `d-${i}`
          const res = await send(box.socket, {
            method: "PATCH",
            path: `/v1/connectors/${id}`,
            body: JSON.stringify({ display_name: display })
          })
          const body = json(res)
          return res.status === 200
            ? { who: "d", kind: "update" as const, ok: true, version: body.version, display }
            : {
                who: "d",
                kind: "update" as const,
                ok: false,
                error: `${res.status} ${body?.error?.code}: ${body?.error?.message}`
              }
        })
      )
    const all = (await Promise.all([viaDaemon(), embedded("a"), embedded("b")])).flat()
    figures.writes = all.length

    const errors = all.filter((r) => !r.ok).map((r) => r.error ?? "")
    figures.busy = errors.filter((e) => /SQLITE_BUSY|database is locked|store_error/i.test(e)).length
    assert.strictEqual(figures.busy, 0, errors.join("\n"))
    // Creates never conflict: each process's own names.
    assert.deepStrictEqual(
      all.filter((r) => r.kind === "create" && !r.ok),
      []
    )
    const updates = all.filter((r) => r.kind === "update")
    const won = updates.filter((r) => r.ok)
    const lost = updates.filter((r) => !r.ok)
    figures.acknowledgedUpdates = won.length
    figures.refusedUpdates = lost.length
    // A refused update is refused as a stale version: 409 version_conflict.
    for (const r of lost) assert.match(r.error ?? "", /version_conflict/, r.error)
    const versions = won.map((r) => r.version)
    assert.strictEqual(new Set(versions).size, versions.length, "two acknowledged updates share a version")
    const final = json(await send(box.socket, { method: "GET", path: `/v1/connectors/${id}` }))
    assert.strictEqual(final.version, 1 + won.length, "an acknowledged update is missing")
    const last = won.find((r) => r.version === final.version)
    assert.strictEqual(final.display_name, last?.display)
    for (const r of won) {
      // oxlint-disable-next-line no-await-in-loop -- a read per version
      const v = await send(box.socket, { method: "GET", path: `/v1/connectors/${id}/versions/${r.version}` })
      if (v.status !== 200 || json(v).display_name !== r.display) figures.lost++
    }
    assert.strictEqual(figures.lost, 0)
    console.info(`concurrency figures: ${JSON.stringify(figures)}`)
  }, 60_000)
})
