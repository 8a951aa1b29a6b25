/**
 * The schema of the SQLite store as an ordered list of migrations. The version a database is at is its
 * `PRAGMA user_version` (0 for a new file); `migrate` applies every later migration and sets the version, inside
 * the caller's transaction, so a database is at one version or the next, never in between. A database whose
 * version is higher than the last migration here was written by a newer Switchboard and is refused.
 *
 * Migrations are append-only: a released one is never edited, a change is a new migration.
 */
import type { StoreError } from "@switchboard/core/Errors"
import * as Effect from "effect/Effect"
import * as Shared from "../internal/migrations.ts"
import { type Database, newerSchema } from "./Database.ts"

/** A numbered migration; its statements are run with `exec`. */
export type Migration = Shared.Migration

/**
 * Layout notes:
 * - Lists are keyset-paginated by id within an org, so every listed table has a unique (org, id) index (or
 *   primary key) and names that must be unique per org have a unique (org, name) index.
 * - Secrets are never in clear: each row that has some keeps them as `key_id` + `sealed`, sealed under the
 *   context (table, row id). JSON records hold no secret (connections keep header names and `has_security`).
 * - `meta` holds the sealed check value that proves the master key at open.
 * - `audit_heads` keeps each org's head in clear (seq, hash) and sealed (`key_id` + `sealed`, under the context
 *   ("audit_heads", org)); the sealed columns are null for a head last written before migration 6.
 */
export const migrations: ReadonlyArray<Migration> = [
  {
    version: 1,
    name: "initial schema",
    sql: `
      CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        sealed BLOB NOT NULL
      ) STRICT;

      CREATE TABLE connectors (
        id TEXT PRIMARY KEY,
        org TEXT NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        version INTEGER NOT NULL,
        record TEXT NOT NULL
      ) STRICT;
      CREATE UNIQUE INDEX connectors_org_id ON connectors (org, id);
      CREATE UNIQUE INDEX connectors_org_name ON connectors (org, name);

      CREATE TABLE connector_versions (
        connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (connector_id, version)
      ) STRICT, WITHOUT ROWID;

      CREATE TABLE credentials (
        id TEXT PRIMARY KEY,
        connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
        scope TEXT NOT NULL,
        owner_org TEXT NOT NULL,
        owner_workspace TEXT NOT NULL,
        owner_user TEXT NOT NULL,
        name TEXT NOT NULL,
        auth_type TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        key_id TEXT NOT NULL,
        sealed BLOB NOT NULL
      ) STRICT;
      CREATE UNIQUE INDEX credentials_key
        ON credentials (connector_id, scope, owner_org, owner_workspace, owner_user, name);

      CREATE TABLE connections (
        id TEXT PRIMARY KEY,
        org TEXT NOT NULL,
        name TEXT NOT NULL,
        connector_id TEXT NOT NULL,
        status TEXT NOT NULL,
        owner TEXT NOT NULL,
        access_scope TEXT NOT NULL,
        record TEXT NOT NULL,
        key_id TEXT NOT NULL,
        sealed BLOB NOT NULL,
        FOREIGN KEY (org, connector_id) REFERENCES connectors (org, id)
      ) STRICT;
      CREATE UNIQUE INDEX connections_org_id ON connections (org, id);
      CREATE UNIQUE INDEX connections_org_name ON connections (org, name);
      CREATE INDEX connections_org_connector ON connections (org, connector_id, id);

      CREATE TABLE audit (
        org TEXT NOT NULL,
        id TEXT NOT NULL,
        connection_id TEXT,
        action TEXT NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (org, id)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX audit_org_connection ON audit (org, connection_id, id);
    `
  },
  {
    version: 2,
    name: "oauth flows, records and refresh leases",
    sql: `
      CREATE TABLE oauth_flows (
        id TEXT PRIMARY KEY,
        expires_at TEXT NOT NULL,
        key_id TEXT NOT NULL,
        sealed BLOB NOT NULL
      ) STRICT;
      CREATE INDEX oauth_flows_expires ON oauth_flows (expires_at);

      CREATE TABLE oauth_records (
        id TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        sealed BLOB NOT NULL
      ) STRICT;

      CREATE TABLE oauth_leases (
        key TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        until_ms INTEGER NOT NULL
      ) STRICT;
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
        org TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL
      ) STRICT;
    `
  },
  {
    version: 4,
    name: "pinned tool manifests",
    sql: `
      CREATE TABLE tool_pins (
        org TEXT NOT NULL,
        connection_id TEXT NOT NULL,
        connector_version INTEGER NOT NULL,
        hash TEXT NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (org, connection_id, connector_version)
      ) STRICT, WITHOUT ROWID;
    `
  },
  {
    version: 5,
    name: "api keys of the team server (digests only)",
    sql: `
      CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT,
        prefix TEXT NOT NULL,
        digest TEXT NOT NULL,
        org TEXT NOT NULL,
        workspace TEXT NOT NULL,
        user TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_used_at TEXT,
        revoked_at TEXT
      ) STRICT;
      CREATE INDEX api_keys_org ON api_keys (org, id);
    `
  },
  {
    version: 6,
    name: "sealed audit heads",
    sql: `
      ALTER TABLE audit_heads ADD COLUMN key_id TEXT;
      ALTER TABLE audit_heads ADD COLUMN sealed BLOB;
    `
  }
]

/** The schema version this code writes. */
export const latestVersion: number = migrations.length

/** The schema version of the database (0 when new). */
export const currentVersion = (db: Database): Effect.Effect<number, StoreError> =>
  Effect.map(db.pragma("user_version"), Number)

/**
 * Applies the pending migrations (of `list`, the real ones unless a test passes its own); run it inside a
 * transaction. Fails, writing nothing, when the database is newer than the list. Returns the versions before
 * and after.
 */
export const migrate = Effect.fn("Migrations.migrate")(function* (
  db: Database,
  list: ReadonlyArray<Migration> = migrations
) {
  const latest = list.length
  const from = yield* currentVersion(db)
  if (from > latest) return yield* newerSchema(from, latest)
  yield* Shared.applyPending(list, from, (migration) => db.exec(migration.sql))
  if (from < latest) yield* db.pragma(`user_version = ${latest}`)
  return { from, to: latest }
})
