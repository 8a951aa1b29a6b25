/**
 * The `Switchboard` service through the daemon (`Client.layerRemote`), what only the remote one does: typed
 * errors come back as the core error classes, calls that would hand secrets back (`resolveCall`) are refused, and
 * a missing daemon is a `StoreError` naming the socket. The scenarios it shares with the embedded service run in
 * test/service/Remote.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Errors from "@switchboard/core/Errors"
import * as Principal from "@switchboard/core/Principal"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll } from "vitest"
import * as Client from "../src/Client.ts"
import { serverLayer, tempDir } from "./support.ts"

const root = tempDir()
afterAll(() => Fs.rmSync(root, { recursive: true, force: true }))
let n = 0

const run = <A, E>(effect: Effect.Effect<A, E, Switchboard.Switchboard | Client.DaemonClient>) =>
  Effect.suspend(() => {
    const socket = Path.join(root, `d${n++}`, "switchboard.sock")
    return effect.pipe(
      Effect.provide(
        Layer.merge(
          serverLayer(socket, { trustHeaders: true, principal: Principal.local("local") }),
          Client.layerRemote(socket, { forwardPrincipal: true })
        )
      )
    )
  })

describe("remote specifics", () => {
  it.live("errors are the core error classes; calls that hand secrets back are not offered", () =>
    run(
      Effect.gen(function* () {
        const sb = yield* Switchboard.Switchboard
        const client = yield* Client.DaemonClient
        assert.isTrue((yield* client.health()).ok)
        const missing = yield* Effect.flip(sb.getConnector("nope"))
        assert.instanceOf(missing, Errors.ConnectorNotFound)
        assert.deepStrictEqual(missing.details, { connector: "nope" })
        const resolve = yield* Effect.flip(sb.resolveCall("anything"))
        assert.instanceOf(resolve, Errors.InvalidRequest)
        assert.include(resolve.message, "not available through the daemon")
        const version = yield* Effect.flip(sb.getConnectorVersion("nope", 0))
        assert.strictEqual(version.code, "connector_version_not_found")
        const notJson = yield* Effect.flip(sb.createConnector({ n: 10n }))
        assert.strictEqual(notJson.code, "validation_failed")
      })
    )
  )

  it.live("no daemon: a StoreError naming the socket", () =>
    Effect.gen(function* () {
      const socket = Path.join(root, "nobody", "switchboard.sock")
      const sb = yield* Switchboard.Switchboard
      assert.isFalse(yield* Client.isRunning(socket))
      const error = yield* Effect.flip(sb.listConnectors())
      assert.instanceOf(error, Errors.StoreError)
      assert.include(error.message, socket)
    }).pipe(Effect.provide(Client.layerRemote(Path.join(root, "nobody", "switchboard.sock"))))
  )
})
