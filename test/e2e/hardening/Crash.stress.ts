/**
 * Crash safety (stress, `pnpm test:stress`): 20 runs of write load against the real daemon process, killed with
 * SIGKILL at a random moment. After each kill the daemon starts again on the stale socket the dead one left,
 * every write it acknowledged (a 201 or 200 that reached the client) is there and whole, and at the end
 * `PRAGMA integrity_check` is ok.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { DatabaseSync } from "node:sqlite"
import { afterAll, assert, describe, it } from "vitest"
import { killAll, sandbox, startDaemon } from "../daemon/harness.ts"
import { json, send } from "./support.ts"

const RUNS = 20
const box = sandbox()
afterAll(() => {
  killAll()
  box.cleanup()
})

const connector = (name: string) => ({
  name,
  display_name: `Crash ${name}`,
  auth_patterns: [{ type: "API_KEY", fields: [{ field_name: "api_key", input_type: "password", required: true }] }],
  proxy_url: "https://api.crash.invalid/v1",
  proxy_enabled: true
})

export const figures = { runs: 0, acknowledged: 0, lost: 0, halfWritten: 0 }

describe("crash safety", () => {
  it(`loses no acknowledged write over ${RUNS} SIGKILLs at random moments`, async () => {
    const acknowledged = new Map<string, string>()
    const credentials = new Map<string, string>()
    for (let run = 0; run < RUNS; run++) {
      // oxlint-disable-next-line no-await-in-loop -- one daemon at a time
      const daemon = await startDaemon(box)
      // Everything acknowledged so far survived the previous kill, whole.
      for (const [name, display] of acknowledged) {
        // oxlint-disable-next-line no-await-in-loop -- a check per record
        const got = await send(box.socket, { method: "GET", path: `/v1/connectors/${name}` })
        if (got.status !== 200) figures.lost++
        else if (json(got).display_name !== display) figures.halfWritten++
      }
      const load = { stop: false }
      const writer = async (w: number) => {
        for (let i = 0; !load.stop; i++) {
          const name = `crash-${run}-${w}-${i}`
          // oxlint-disable-next-line no-await-in-loop -- each writer writes in sequence
          const res = await send(box.socket, {
            method: "POST",
            path: "/v1/connectors",
            body: JSON.stringify(connector(name))
          }).catch(() => undefined)
          if (res === undefined) return
          if (res.status === 201) acknowledged.set(name, `Crash ${name}`)
          else assert.fail(`${name}: ${res.status} ${res.text}`)
          // oxlint-disable-next-line no-await-in-loop
          const cred = await send(box.socket, {
            method: "POST",
            path: `/v1/connectors/${name}/user/credentials`,
            body: JSON.stringify({ values: { api_key: `k-${name}` } })
          }).catch(() => undefined)
          if (cred === undefined) return
          if (cred.status === 200) credentials.set(name, name)
        }
      }
      const writers = [0, 1, 2, 3].map(writer)
      // oxlint-disable-next-line no-await-in-loop
      await new Promise((resolve) => setTimeout(resolve, 100 + Math.floor(Math.random() * 600)))
      daemon.child.kill("SIGKILL")
      load.stop = true
      // oxlint-disable-next-line no-await-in-loop
      await daemon.exited
      // oxlint-disable-next-line no-await-in-loop
      await Promise.all(writers)
      // The dead daemon's socket file is left behind: the next start must replace it.
      assert.isTrue(Fs.existsSync(box.socket), "a stale socket is left")
      figures.runs++
    }
    const daemon = await startDaemon(box)
    for (const [name, display] of acknowledged) {
      // oxlint-disable-next-line no-await-in-loop
      const got = await send(box.socket, { method: "GET", path: `/v1/connectors/${name}` })
      if (got.status !== 200) figures.lost++
      else if (json(got).display_name !== display) figures.halfWritten++
    }
    for (const name of credentials.keys()) {
      // oxlint-disable-next-line no-await-in-loop
      const got = await send(box.socket, { method: "GET", path: `/v1/connectors/${name}/user/credentials` })
      if (got.status !== 200 || json(got).data?.length !== 1) figures.lost++
    }
    daemon.child.kill("SIGTERM")
    await daemon.exited
    const db = new DatabaseSync(Path.join(box.home, "switchboard.db"), { readOnly: true })
    try {
      const rows = db.prepare("PRAGMA integrity_check").all() as Array<Record<string, unknown>>
      assert.deepStrictEqual(
        rows.map((r) => Object.values(r)[0]),
        ["ok"]
      )
    } finally {
      db.close()
    }
    figures.acknowledged = acknowledged.size + credentials.size
    console.info(`crash figures: ${JSON.stringify(figures)}`)
    assert.strictEqual(figures.lost, 0)
    assert.strictEqual(figures.halfWritten, 0)
    assert.isAbove(acknowledged.size, RUNS)
  }, 300_000)
})
