/**
 * Helpers of the SQLite tests: temporary directories, stores and sealers under a given key, raw connections
 * beside the store, and snapshots of the files on disk.
 */
import type { SealError, StoreError } from "@switchboard/core/Errors"
import { Sealer as SealerPort } from "@switchboard/core/Sealer"
import BetterSqlite3 from "better-sqlite3"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Sqlite from "../../src/sqlite/index.ts"
import { KeyProvider, Sealer } from "../../src/sodium/index.ts"

export const keyA = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff)
export const keyB = Uint8Array.from({ length: 32 }, (_, i) => (i * 53 + 5) & 0xff)

/** A fresh temporary directory; remove it with `Fs.rmSync(dir, { recursive: true })`. */
export const tempDir = (label: string): string => Fs.mkdtempSync(Path.join(Os.tmpdir(), `sb-sqlite-${label}-`))

/** A new layer object per call: a shared one would be memoised and hand every store the first key's sealer. */
export const sealerLayer = (key: Uint8Array): Layer.Layer<SealerPort, SealError> =>
  Layer.effect(SealerPort, Sealer.make).pipe(Layer.provide(KeyProvider.layerMemory(key)))

export const makeSealer = (key: Uint8Array) => Sealer.make.pipe(Effect.provide(KeyProvider.layerMemory(key)))

/** The four stores and the open database, sealed under `key`. */
export const storeLayer = (
  filename: string,
  key: Uint8Array
): Layer.Layer<Sqlite.Store.Stores | Sqlite.Database.SqliteDatabase, StoreError | SealError> =>
  Sqlite.Store.layerWithDatabase({ filename }).pipe(Layer.provide(sealerLayer(key)))

/** Runs `f` on a raw better-sqlite3 connection to `filename` (beside any store), then closes it. */
export const withRaw = <A>(filename: string, f: (db: BetterSqlite3.Database) => A): A => {
  const db = new BetterSqlite3(filename, { timeout: 5000 })
  try {
    return f(db)
  } finally {
    db.close()
  }
}

export interface FileState {
  readonly exists: boolean
  readonly size: number
  readonly mtimeMs: number
  readonly bytes: string
}

/** Bytes (as hex), size and mtime of each file, or "missing". */
export const snapshot = (paths: ReadonlyArray<string>): Record<string, FileState> =>
  Object.fromEntries(
    paths.map((path) => {
      if (!Fs.existsSync(path)) return [path, { exists: false, size: 0, mtimeMs: 0, bytes: "" }]
      const stat = Fs.statSync(path)
      return [
        path,
        { exists: true, size: stat.size, mtimeMs: stat.mtimeMs, bytes: Fs.readFileSync(path).toString("hex") }
      ]
    })
  )

/** The database file and its WAL. */
export const dbFiles = (filename: string) => [filename, `${filename}-wal`]
