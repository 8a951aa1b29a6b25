/**
 * Every connector payload under examples/ imports as it is, so the README's commands work.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Memory from "@switchboard/adapters/memory"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as Path from "node:path"

const dir = Path.join(import.meta.dirname, "..", "..", "examples", "connectors")
const files = Fs.readdirSync(dir).filter((f) => f.endsWith(".json"))

describe("examples/connectors", () => {
  it("holds the seed-style payloads", () => {
    assert.includeMembers(files, ["asana.json", "acme-api.json", "example-mcp-oauth.json"])
  })

  it.effect.each(files)("%s imports", (file) =>
    Effect.gen(function* () {
      const sb = yield* Switchboard.Switchboard
      const payload: unknown = JSON.parse(Fs.readFileSync(Path.join(dir, file), "utf8"))
      const created = yield* sb.createConnector(payload)
      assert.strictEqual((yield* sb.getConnector(created.name)).id, created.id)
    }).pipe(Effect.provide(Switchboard.layer.pipe(Layer.provide(Memory.layer))))
  )
})
