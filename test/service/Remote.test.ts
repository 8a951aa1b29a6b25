/**
 * The `Switchboard` service through the daemon (`Client.layerRemote`): the scenarios of
 * test/support/switchboardScenarios.ts that do not hand secrets back (`resolveCall` stays in the daemon). Each
 * scenario gets a fresh in-process daemon over an empty memory store on its own socket, and the calling fiber's
 * principal travels as trusted headers.
 */
import * as Memory from "@switchboard/adapters/memory"
import * as Principal from "@switchboard/core/Principal"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Client from "@switchboard/daemon/client"
import * as Server from "@switchboard/daemon/Server"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll } from "vitest"
import { switchboardScenarios } from "../support/switchboardScenarios.ts"

const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sbr-"))
afterAll(() => Fs.rmSync(root, { recursive: true, force: true }))
let n = 0

/** A daemon in process on `socket` (the local user, trusting principal headers) and the remote service to it. */
const daemon = (socket: string) =>
  Layer.merge(
    Server.layer({
      socket,
      trustHeaders: true,
      principal: Principal.local("local"),
      logRequests: false,
      shutdownTimeout: "1 second"
    }).pipe(Layer.provide(Switchboard.layer), Layer.provide(Layer.fresh(Memory.layer))),
    Client.layerRemote(socket, { forwardPrincipal: true })
  )

switchboardScenarios("the Switchboard service through the daemon", {
  run: (effect) =>
    Effect.suspend(() => effect.pipe(Effect.provide(daemon(Path.join(root, `d${n++}`, "switchboard.sock"))))),
  resolves: false
})
