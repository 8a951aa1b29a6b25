/**
 * Helpers of the PostgreSQL store tests: one throwaway cluster per test file (test/support/postgres starts it:
 * Debian's binaries, a loopback port, SCRAM passwords), a fresh database per test, raw SQL beside the stores,
 * and stores sealed under a given key. The cluster helper is loaded at run time from the repository's
 * test/support (outside this package's TypeScript project), so its API is restated here.
 */
import type { SealError, StoreError } from "@switchboard/core/Errors"
import * as Layer from "effect/Layer"
import Pg from "pg"
import * as Postgres from "../../src/postgres/index.ts"
import { sealerLayer } from "../sqlite/support.ts"

export interface Cluster {
  readonly host: "127.0.0.1"
  readonly port: number
  readonly user: string
  readonly password: string
  readonly version: string
  readonly stop: () => void
}

interface ClusterModule {
  readonly unavailable: () => string | undefined
  readonly start: () => Promise<Cluster>
}

const clusterPath = "../../../../test/support/postgres/Cluster.ts"
const clusterModule = (): Promise<ClusterModule> => import(clusterPath) as Promise<ClusterModule>

/** Why no cluster can start here (tests skip), or undefined. Throws when CI requires PostgreSQL. */
export const unavailable = async (): Promise<string | undefined> => (await clusterModule()).unavailable()

export const start = async (): Promise<Cluster> => (await clusterModule()).start()

export const urlOf = (cluster: Cluster, database: string): string =>
  `postgres://${cluster.user}:${encodeURIComponent(cluster.password)}@${cluster.host}:${cluster.port}/${database}`

/** Runs statements on a short-lived connection to `database` (default the maintenance database). */
export const sql = async <Row = Record<string, unknown>>(
  cluster: Cluster,
  text: string,
  params: ReadonlyArray<unknown> = [],
  database = "postgres"
): Promise<ReadonlyArray<Row>> => {
  const client = new Pg.Client({ connectionString: urlOf(cluster, database) })
  await client.connect()
  try {
    return (await client.query(text, params as Array<unknown>)).rows as ReadonlyArray<Row>
  } finally {
    await client.end()
  }
}

let databases = 0

/** A new empty database; its URL. */
export const freshDatabase = async (cluster: Cluster): Promise<{ readonly name: string; readonly url: string }> => {
  const name = `sb_test_${process.pid}_${++databases}`
  await sql(cluster, `CREATE DATABASE ${name}`)
  return { name, url: urlOf(cluster, name) }
}

/** Every store port on `url` and the pool, sealed under `key`; a small pool (the cluster allows few connections). */
export const storeLayer = (
  url: string,
  key: Uint8Array,
  poolSize = 3
): Layer.Layer<Postgres.Stores | Postgres.Database.PostgresDatabase, StoreError | SealError> =>
  Postgres.layerWithDatabase({ url, poolSize }).pipe(Layer.provide(sealerLayer(key)))
