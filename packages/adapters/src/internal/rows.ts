/**
 * What the SQL stores (SQLite: `sqlite/Store.ts`, `sqlite/BundleStore.ts`; PostgreSQL: `postgres/Store.ts`) share
 * about their rows: JSON records checked against their schema both ways, sealed columns sealed and opened with
 * the plaintext zeroed, the credential row, and the audit chain's links. Only the SQL differs between the
 * databases; none of this knows which one it runs on.
 */
import type * as AuditChain from "@switchboard/core/AuditChain"
import * as AuditLog from "@switchboard/core/AuditLog"
import * as AuthPattern from "@switchboard/core/AuthPattern"
import type * as Connection from "@switchboard/core/Connection"
import * as Credential from "@switchboard/core/Credential"
import { type SealError, StoreError } from "@switchboard/core/Errors"
import type { SealContext, Sealed, Sealer } from "@switchboard/core/Sealer"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"

export type SealerService = (typeof Sealer)["Service"]

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true })

/** Prefixes a StoreError's message with what was being done. */
export const doing =
  (what: string) =>
  <A, E, R>(effect: Effect.Effect<A, E | StoreError, R>): Effect.Effect<A, E | StoreError, R> =>
    Effect.mapError(effect, (error) =>
      error instanceof StoreError
        ? new StoreError({
            message: `${what}: ${error.message}`,
            ...(error.details === undefined ? {} : { details: error.details }),
            ...(error.cause === undefined ? {} : { cause: error.cause })
          })
        : error
    )

// ---------------------------------------------------------------------------------------------------------------
// JSON records

/** A row whose record is a JSON column. */
export interface RecordRow {
  readonly id: string
  readonly record: string
}

/**
 * JSON records checked against their schema both ways: nothing invalid is written, a corrupt row is an error.
 * With `cache`, `readOne` keeps the last `cache` records it decoded by row id with the text they were decoded
 * from, and a row read again with the very same text is not parsed and decoded again (the row is still read
 * every time, so a change made by another process is seen; decoded records are immutable, so sharing them is
 * safe). Lists use `read`, so paging through everything does not push out the records read on every call.
 */
export const jsonRecord = <T, E>(schema: Schema.Codec<T, E>, label: string, cache = 0) => {
  const encode = Schema.encodeUnknownEffect(schema)
  const decode = Schema.decodeUnknownEffect(schema)
  const decoded = new Map<string, { readonly text: string; readonly value: T }>()
  const remember = (id: string, text: string, value: T) =>
    Effect.sync(() => {
      decoded.delete(id)
      if (decoded.size >= cache) {
        const oldest = decoded.keys().next()
        if (oldest.done !== true) decoded.delete(oldest.value)
      }
      decoded.set(id, { text, value })
    })
  const parse = (id: string, text: string): Effect.Effect<T, StoreError> =>
    Effect.try({
      try: (): unknown => JSON.parse(text),
      catch: (cause) => new StoreError({ message: `the stored ${label} ${id} is corrupt (not JSON)`, cause })
    }).pipe(
      Effect.flatMap((json) => decode(json)),
      Effect.mapError((cause) =>
        cause instanceof StoreError
          ? cause
          : new StoreError({ message: `the stored ${label} ${id} is corrupt: ${cause.message}`, cause })
      )
    )
  return {
    write: (id: string, value: T): Effect.Effect<string, StoreError> =>
      encode(value).pipe(
        Effect.map((encoded) => JSON.stringify(encoded)),
        Effect.mapError(
          (cause) => new StoreError({ message: `the ${label} ${id} is not valid: ${cause.message}`, cause })
        )
      ),
    read: parse,
    readOne: (id: string, text: string): Effect.Effect<T, StoreError> => {
      if (cache === 0) return parse(id, text)
      const hit = decoded.get(id)
      if (hit !== undefined && hit.text === text) return Effect.succeed(hit.value)
      return Effect.tap(parse(id, text), (value) => remember(id, text, value))
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Sealed values

/** The columns of a sealed value: the id of the key it was sealed under and the sealed bytes. */
export interface SealedColumns {
  readonly key_id: string
  readonly sealed: Uint8Array
}

/** Bytes as a Node buffer without copying, as both drivers bind binary parameters. */
export const toBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

export type Plain = Readonly<Record<string, string>>

export const reveal = (values: Readonly<Record<string, Redacted.Redacted<string>>>): Plain =>
  Object.fromEntries(Object.entries(values).map(([name, value]) => [name, Redacted.value(value)]))

export const conceal = (values: Plain): Readonly<Record<string, Redacted.Redacted<string>>> =>
  Object.fromEntries(Object.entries(values).map(([name, value]) => [name, Redacted.make(value)]))

/** Seals a string; its bytes are zeroed once sealed. */
export const sealText = (sealer: SealerService, text: string, context: SealContext): Effect.Effect<Sealed, SealError> =>
  Effect.suspend(() => {
    const bytes = encoder.encode(text)
    return sealer.seal(Redacted.make(bytes), context).pipe(Effect.ensuring(Effect.sync(() => bytes.fill(0))))
  })

/** Seals a JSON value; the plaintext bytes are zeroed once sealed. */
export const sealJson = (
  sealer: SealerService,
  value: unknown,
  context: SealContext
): Effect.Effect<Sealed, SealError> => Effect.suspend(() => sealText(sealer, JSON.stringify(value), context))

/** Opens a sealed string (a failure when it is not UTF-8); the opened bytes are zeroed. */
export const openText = (
  sealer: SealerService,
  columns: SealedColumns,
  context: SealContext
): Effect.Effect<Result.Result<string, unknown>, SealError> =>
  Effect.flatMap(sealer.open({ keyId: columns.key_id, bytes: columns.sealed }, context), (opened) =>
    Effect.sync(() => {
      const bytes = Redacted.value(opened)
      const result = Result.try(() => decoder.decode(bytes))
      bytes.fill(0)
      return result
    })
  )

/** `Schema.decodeUnknownResult` of a schema, built once per schema (`openJson` runs on every credential read). */
const decoders = new WeakMap<object, (input: unknown) => Result.Result<unknown, Schema.SchemaError>>()
const decoderOf = <T, E>(schema: Schema.Codec<T, E>): ((input: unknown) => Result.Result<T, Schema.SchemaError>) => {
  let decode = decoders.get(schema)
  if (decode === undefined) {
    decode = Schema.decodeUnknownResult(schema)
    decoders.set(schema, decode)
  }
  return decode as (input: unknown) => Result.Result<T, Schema.SchemaError>
}

/**
 * Opens a sealed JSON value and decodes it. A value that opens but does not decode is reported without its
 * content or the parser's message, which would quote it.
 */
export const openJson = <T, E>(
  sealer: SealerService,
  schema: Schema.Codec<T, E>,
  columns: SealedColumns,
  context: SealContext
): Effect.Effect<T, StoreError | SealError> =>
  Effect.flatMap(sealer.open({ keyId: columns.key_id, bytes: columns.sealed }, context), (opened) => {
    const bytes = Redacted.value(opened)
    const result = Result.try((): unknown => JSON.parse(decoder.decode(bytes))).pipe(
      Result.flatMap((json) => decoderOf(schema)(json))
    )
    bytes.fill(0)
    return Result.isSuccess(result)
      ? Effect.succeed(result.success)
      : Effect.fail(
          new StoreError({
            message: `the sealed value of ${context.table} row ${context.rowId} is not in the expected form`
          })
        )
  })

export const SecretValues = Schema.Record(Schema.String, Schema.String)
export const ConnectionSecrets = Schema.Struct({ security: SecretValues, headers: SecretValues })

// ---------------------------------------------------------------------------------------------------------------
// Credentials

export interface CredentialRow extends SealedColumns {
  readonly id: string
  readonly connector_id: string
  readonly scope: string
  readonly owner_org: string
  readonly owner_workspace: string
  readonly owner_user: string
  readonly name: string
  readonly auth_type: string | null
  readonly created_at: string
  readonly updated_at: string
}

export const CredentialColumns = Schema.Struct({
  scope: Credential.Scope,
  auth_type: Schema.NullOr(AuthPattern.AuthType)
})
export const decodeCredentialColumns = Schema.decodeUnknownResult(CredentialColumns)

export const credentialContext = (id: string): SealContext => ({ table: "credentials", rowId: id })

type Secrets = Readonly<Record<string, Redacted.Redacted<string>>>

/** Opens a credential row's sealed values (as `Redacted`). */
export const openCredentialValues = (
  sealer: SealerService,
  row: CredentialRow
): Effect.Effect<Secrets, StoreError | SealError> =>
  Effect.map(openJson(sealer, SecretValues, row, credentialContext(row.id)), conceal)

/**
 * A credential row with its values opened (as `Redacted`; `openValues` may answer them from a cache of its own).
 * Read on every call through a connection with a stored credential: the columns are checked synchronously.
 */
export const readCredential = (
  sealer: SealerService,
  row: CredentialRow,
  openValues: (row: CredentialRow) => Effect.Effect<Secrets, StoreError | SealError> = (r) =>
    openCredentialValues(sealer, r)
): Effect.Effect<Credential.Credential, StoreError | SealError> =>
  Effect.gen(function* () {
    const decoded = decodeCredentialColumns(row)
    if (Result.isFailure(decoded)) {
      const cause = decoded.failure
      return yield* new StoreError({ message: `the stored credential ${row.id} is corrupt: ${cause.message}`, cause })
    }
    const columns = decoded.success
    const values = yield* openValues(row)
    return {
      id: row.id,
      connector_id: row.connector_id,
      scope: columns.scope,
      owner: ownerOf(row),
      name: row.name,
      auth_type: columns.auth_type,
      values,
      created_at: row.created_at,
      updated_at: row.updated_at
    } satisfies Credential.Credential
  })

// The unique key of a credential: owner parts that do not apply are stored as "".
export const credentialKeyParams = (
  connectorId: string,
  scope: Credential.Scope,
  owner: Credential.Owner
): Array<string> => [connectorId, scope, owner.org, owner.workspace ?? "", owner.user ?? ""]

/** The owner of a credential row (its parts stored as "" do not apply). */
export const ownerOf = (row: {
  readonly owner_org: string
  readonly owner_workspace: string
  readonly owner_user: string
}): Credential.Owner => ({
  org: row.owner_org,
  ...(row.owner_workspace === "" ? {} : { workspace: row.owner_workspace }),
  ...(row.owner_user === "" ? {} : { user: row.owner_user })
})

/** The columns a credential row is inserted with, in the order of `credentialParams`. */
export const CREDENTIAL_COLUMNS =
  "connector_id, scope, owner_org, owner_workspace, owner_user, name, id, auth_type, created_at, updated_at, key_id, sealed"

/** The values of `CREDENTIAL_COLUMNS`: the credential's key, its row id and its sealed values. */
export const credentialParams = (
  credential: Credential.Credential,
  id: string,
  sealed: Sealed
): Array<string | null | Buffer> => [
  ...credentialKeyParams(credential.connector_id, credential.scope, credential.owner),
  credential.name,
  id,
  credential.auth_type,
  credential.created_at,
  credential.updated_at,
  sealed.keyId,
  toBuffer(sealed.bytes)
]

// ---------------------------------------------------------------------------------------------------------------
// Connections

export const connectionContext = (id: string): SealContext => ({ table: "connections", rowId: id })

/** Seals a connection's secrets (security and header values) to its row. */
export const sealConnectionSecrets = (
  sealer: SealerService,
  id: string,
  secrets: Connection.Secrets
): Effect.Effect<Sealed, SealError> =>
  sealJson(sealer, { security: reveal(secrets.security), headers: reveal(secrets.headers) }, connectionContext(id))

/** The columns a connection row is inserted with, in the order of `connectionParams`. */
export const CONNECTION_COLUMNS = "id, org, name, connector_id, status, owner, access_scope, record, key_id, sealed"

/** The values of `CONNECTION_COLUMNS`: the connection, its JSON record and its sealed secrets. */
export const connectionParams = (
  connection: Connection.Connection,
  record: string,
  sealed: Sealed
): Array<string | Buffer> => [
  connection.id,
  connection.org,
  connection.name,
  connection.connector_id,
  connection.status,
  connection.owner,
  connection.access_scope,
  record,
  sealed.keyId,
  toBuffer(sealed.bytes)
]

// ---------------------------------------------------------------------------------------------------------------
// The audit chain

/** A chained `audit` row. */
export interface LinkRow {
  readonly id: string
  readonly record: string
  readonly seq: number
  readonly prev_hash: string
  readonly hash: string
}

const decodeAuditRecord = Schema.decodeUnknownOption(Schema.fromJsonString(AuditLog.AuditRecord))

/** What `AuditChain.links` answers from the chained rows (in sequence order), the head row and the legacy count. */
export const chainOf = (
  rows: ReadonlyArray<LinkRow>,
  head: AuditChain.Head | undefined,
  unchained: number
): {
  readonly links: ReadonlyArray<AuditChain.Link>
  readonly head: AuditChain.Head | undefined
  readonly unchained: number
} => ({
  links: rows.map(
    (row): AuditChain.Link => ({
      seq: row.seq,
      prev_hash: row.prev_hash,
      hash: row.hash,
      id: row.id,
      record: Option.getOrUndefined(decodeAuditRecord(row.record))
    })
  ),
  head: head === undefined ? undefined : { seq: head.seq, hash: head.hash },
  unchained
})
