/**
 * The SQLite stores against the shared behavioural suite: on a temporary file (sealed with the libsodium
 * sealer, a fresh file per test) and on a private in-memory database.
 */
import { afterAll } from "@effect/vitest"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Sqlite from "../../src/sqlite/index.ts"
import { storeSuite } from "../StoreSuite.ts"
import { keyA, sealerLayer, tempDir } from "./support.ts"

const dir = tempDir("suite")
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

let n = 0
storeSuite("sqlite stores", () =>
  Sqlite.layer({ filename: Path.join(dir, `store-${++n}.db`) }).pipe(Layer.provide(sealerLayer(keyA)))
)

storeSuite("sqlite stores in memory", () => Sqlite.layerMemory.pipe(Layer.provide(sealerLayer(keyA))))
