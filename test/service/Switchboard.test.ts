/**
 * The Switchboard application service embedded over the in-memory store: the scenarios of
 * test/support/switchboardScenarios.ts, `resolveCall` included.
 */
import * as Memory from "@switchboard/adapters/memory"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { switchboardScenarios } from "../support/switchboardScenarios.ts"

const layer = Switchboard.layer.pipe(Layer.provide(Memory.layer))

switchboardScenarios("the Switchboard service, embedded", {
  run: (effect) => effect.pipe(Effect.provide(layer)),
  resolves: true
})
