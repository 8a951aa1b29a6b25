/** The in-memory `ToolPins` store: the reference behaviour the SQLite store must match. */
import * as ToolPins from "@switchboard/core/ToolPins"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { sha256 } from "../internal/digest.ts"

/** The key of a connection's pins in a `PinMap`. */
export const keyOf = (org: string, connectionId: string) => JSON.stringify([org, connectionId])

/** (org, connection) (`keyOf`) → connector version → pin. */
export type PinMap = Map<string, Map<number, ToolPins.Manifest>>

/** A store over one map (the memory store shares it with its bundles). */
export const make = (pins: PinMap = new Map()): ToolPins.ToolPins["Service"] => {
  const versions = (org: string, connectionId: string) => {
    const key = keyOf(org, connectionId)
    let inner = pins.get(key)
    if (inner === undefined) {
      inner = new Map()
      pins.set(key, inner)
    }
    return inner
  }
  return ToolPins.ToolPins.of({
    get: (org, connectionId, version) =>
      Effect.sync(() => Option.fromUndefinedOr(pins.get(keyOf(org, connectionId))?.get(version))),
    latest: (org, connectionId) =>
      Effect.sync(() => {
        const inner = pins.get(keyOf(org, connectionId))
        if (inner === undefined || inner.size === 0) return Option.none()
        return Option.fromUndefinedOr(inner.get(Math.max(...inner.keys())))
      }),
    pin: (manifest) =>
      Effect.sync(() => {
        const inner = versions(manifest.org, manifest.connection_id)
        const existing = inner.get(manifest.connector_version)
        if (existing !== undefined) return existing
        inner.set(manifest.connector_version, manifest)
        return manifest
      }),
    replace: (manifest) =>
      Effect.sync(() => void versions(manifest.org, manifest.connection_id).set(manifest.connector_version, manifest)),
    digest: sha256
  })
}

export const layer: Layer.Layer<ToolPins.ToolPins> = Layer.sync(ToolPins.ToolPins, make)
