/**
 * The schema of the PostgreSQL store as an ordered list of migrations, numbered like the SQLite store's (the same
 * tables at the same version). The version a database is at is the highest row of `schema_migrations` (0 when
 * the table is missing). `migrate` runs inside the caller's transaction after `lock`, a transaction-scoped
 * advisory lock: two daemons starting at once on a new database do not both create the schema, the second waits
 * and finds it done. A database whose version is higher than the last migration here was written by a newer
 * Switchboard and is refused before anything is written.
 *
 * Migrations are append-only: a released one is never edited, a change is a new migration.
 */
import type { StoreError } from "@switchboard/core/Errors"
import * as Effect from "effect/Effect"
import * as Shared from "../internal/migrations.ts"
import { type Executor, newerSchema } from "./Database.ts"

/** A numbered migration; its statements are run as one simple query. */
export type Migration = Shared.Migration

/**
 * Layout notes (beside the SQLite store's):
 * - Every text column that is compared, ordered or paginated on is `COLLATE "C"`: ids and names order by code
 *   point, as in SQLite and in memory, whatever the database's default collation.
 * - Every row of an organization's data carries its org (connector versions too), and lookups by id are by
 *   (org, id): a unique (org, id) constraint backs them and the composite foreign keys.
 * - Secrets are never in clear: `key_id` + `sealed` (bytea), sealed under the context (table, row id).
 * - `oauth_*` rows are keyed by ids the OAuth service makes globally unique (the port has no org).
 */
export const migrations: ReadonlyArray<Migration> = [
  {
    version: 1,
    name: "initial schema",
    sql: `
      CREATE TABLE meta (
        key TEXT COLLATE "C" PRIMARY KEY,
        key_id TEXT NOT NULL,
        sealed BYTEA NOT NULL
      );

      CREATE TABLE connectors (
        id TEXT COLLATE "C" PRIMARY KEY,
        org TEXT COLLATE "C" NOT NULL,
        name TEXT COLLATE "C" NOT NULL,
        kind TEXT COLLATE "C" NOT NULL,
        version INTEGER NOT NULL,
        record TEXT NOT NULL,
        CONSTRAINT connectors_org_id UNIQUE (org, id),
        CONSTRAINT connectors_org_name UNIQUE (org, name)
      );

      CREATE TABLE connector_versions (
        org TEXT COLLATE "C" NOT NULL,
        connector_id TEXT COLLATE "C" NOT NULL,
        version INTEGER NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (org, connector_id, version),
        FOREIGN KEY (org, connector_id) REFERENCES connectors (org, id) ON DELETE CASCADE
      );

      CREATE TABLE credentials (
        id TEXT COLLATE "C" PRIMARY KEY,
        connector_id TEXT COLLATE "C" NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
        scope TEXT COLLATE "C" NOT NULL,
        owner_org TEXT COLLATE "C" NOT NULL,
        owner_workspace TEXT COLLATE "C" NOT NULL,
        owner_user TEXT COLLATE "C" NOT NULL,
        name TEXT COLLATE "C" NOT NULL,
        auth_type TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        key_id TEXT NOT NULL,
        sealed BYTEA NOT NULL,
        CONSTRAINT credentials_key UNIQUE (connector_id, scope, owner_org, owner_workspace, owner_user, name)
      );
      CREATE INDEX credentials_owner_org ON credentials (owner_org);

      CREATE TABLE connections (
        id TEXT COLLATE "C" PRIMARY KEY,
        org TEXT COLLATE "C" NOT NULL,
        name TEXT COLLATE "C" NOT NULL,
        connector_id TEXT COLLATE "C" NOT NULL,
        status TEXT COLLATE "C" NOT NULL,
        owner TEXT COLLATE "C" NOT NULL,
        access_scope TEXT COLLATE "C" NOT NULL,
        record TEXT NOT NULL,
        key_id TEXT NOT NULL,
        sealed BYTEA NOT NULL,
        CONSTRAINT connections_org_id UNIQUE (org, id),
        CONSTRAINT connections_org_name UNIQUE (org, name),
        CONSTRAINT connections_connector FOREIGN KEY (org, connector_id) REFERENCES connectors (org, id)
      );
      CREATE INDEX connections_org_connector ON connections (org, connector_id, id);

      CREATE TABLE audit (
        org TEXT COLLATE "C" NOT NULL,
        id TEXT COLLATE "C" NOT NULL,
        connection_id TEXT COLLATE "C",
        action TEXT COLLATE "C" NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (org, id)
      );
      CREATE INDEX audit_org_connection ON audit (org, connection_id, id);
    `
  },
  {
    version: 2,
    name: "oauth flows, records and refresh leases",
    sql: `
      CREATE TABLE oauth_flows (
        id TEXT COLLATE "C" PRIMARY KEY,
        expires_at TEXT COLLATE "C" NOT NULL,
        key_id TEXT NOT NULL,
        sealed BYTEA NOT NULL
      );
      CREATE INDEX oauth_flows_expires ON oauth_flows (expires_at);

      CREATE TABLE oauth_records (
        id TEXT COLLATE "C" PRIMARY KEY,
        key_id TEXT NOT NULL,
        sealed BYTEA NOT NULL
      );

      CREATE TABLE oauth_leases (
        key TEXT COLLATE "C" PRIMARY KEY,
        holder TEXT COLLATE "C" NOT NULL,
        until_ms BIGINT NOT NULL
      );
    `
  },
  {
    version: 3,
    name: "hash-chained audit records",
    sql: `
      ALTER TABLE audit ADD COLUMN seq INTEGER;
      ALTER TABLE audit ADD COLUMN prev_hash TEXT;
      ALTER TABLE audit ADD COLUMN hash TEXT;
      CREATE UNIQUE INDEX audit_org_seq ON audit (org, seq);

      CREATE TABLE audit_heads (
        org TEXT COLLATE "C" PRIMARY KEY,
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL
      );
    `
  },
  {
    version: 4,
    name: "pinned tool manifests",
    sql: `
      CREATE TABLE tool_pins (
        org TEXT COLLATE "C" NOT NULL,
        connection_id TEXT COLLATE "C" NOT NULL,
        connector_version INTEGER NOT NULL,
        hash TEXT NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (org, connection_id, connector_version)
      );
    `
  },
  {
    version: 5,
    name: "api keys of the team server (digests only)",
    sql: `
      CREATE TABLE api_keys (
        id TEXT COLLATE "C" PRIMARY KEY,
        name TEXT,
        prefix TEXT NOT NULL,
        digest TEXT NOT NULL,
        org TEXT COLLATE "C" NOT NULL,
        workspace TEXT NOT NULL,
        "user" TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_used_at TEXT,
        revoked_at TEXT
      );
      CREATE INDEX api_keys_org ON api_keys (org, id);
    `
  },
  {
    version: 6,
    name: "sealed audit heads",
    sql: `
      ALTER TABLE audit_heads ADD COLUMN key_id TEXT;
      ALTER TABLE audit_heads ADD COLUMN sealed BYTEA;
    `
  }
]

/** The schema version this code writes: the last migration's (versions grow, and may skip a number). */
export const latestVersion: number = migrations.at(-1)?.version ?? 0

/**
 * Takes the migration lock for the rest of the caller's transaction (a transaction-scoped advisory lock: released
 * at COMMIT or ROLLBACK, also when the connection dies).
 */
export const lock = (tx: Executor): Effect.Effect<void, StoreError> =>
  Effect.asVoid(tx.run("SELECT pg_advisory_xact_lock(hashtextextended('switchboard:migrations', 0))"))

/** The schema version of the database (0 when new). Reads only: a new database is left as it is. */
export const currentVersion = (tx: Executor): Effect.Effect<number, StoreError> =>
  Effect.gen(function* () {
    const table = yield* tx.get<{ readonly name: string | null }>(
      "SELECT to_regclass('schema_migrations')::text AS name"
    )
    if (table?.name === null || table?.name === undefined) return 0
    const row = yield* tx.get<{ readonly version: number | null }>(
      "SELECT max(version) AS version FROM schema_migrations"
    )
    return row?.version ?? 0
  })

/**
 * Applies the pending migrations (of `list`, the real ones unless a test passes its own); run it inside a
 * transaction, after `lock`. Fails, writing nothing, when the database is newer than the list. Returns the
 * versions before and after.
 */
export const migrate = Effect.fn("PostgresMigrations.migrate")(function* (
  tx: Executor,
  list: ReadonlyArray<Migration> = migrations
) {
  const latest = list.at(-1)?.version ?? 0
  const from = yield* currentVersion(tx)
  if (from > latest) return yield* newerSchema(from, latest)
  if (from === latest) return { from, to: latest }
  yield* tx.run(
    `CREATE TABLE IF NOT EXISTS schema_migrations (
       version INTEGER PRIMARY KEY,
       name TEXT NOT NULL,
       applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
     )`
  )
  yield* Shared.applyPending(
    list,
    from,
    (migration) => tx.run(migration.sql),
    (migration) =>
      tx.run("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [migration.version, migration.name])
  )
  return { from, to: latest }
})
