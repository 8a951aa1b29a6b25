/**
 * Opaque keyset cursors for `?cursor=`. A cursor carries the sort key of the last row of the previous page and a
 * short hash of the list's filters, so a cursor reused with other filters is refused. A 32-bit FNV-1a checksum
 * and a canonical-form check turn any tampering (a changed character, truncation, bad base64url or JSON, another
 * version) into an `invalid_cursor` error. The checksum is not a MAC: cursors are not secret, only tamper-evident.
 */
import { Base64Url } from "effect/encoding"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { InvalidRequest } from "./Errors.ts"

/** Where the next page starts: after the row with sort key `after`, under the filters `filter` (see `filterKey`). */
export interface Position {
  readonly after: string
  readonly filter: string
}

const VERSION = 1

/** Longer cursors are refused before any decoding work. */
export const MAX_LENGTH = 4096

/** 32-bit FNV-1a over the UTF-16 code units (low byte, then high byte), as 8 hex digits. */
const fnv1a = (text: string): string => {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i)
    hash = Math.imul(hash ^ (unit & 0xff), 0x01000193)
    hash = Math.imul(hash ^ (unit >>> 8), 0x01000193)
  }
  return (hash >>> 0).toString(16).padStart(8, "0")
}

const checksum = (v: number, a: string, f: string): string => fnv1a(`${v}|${a}|${f}`)

const Hash = Schema.String.check(Schema.isPattern(/^[0-9a-f]{8}$/))

const Body = Schema.Struct({ v: Schema.Number, a: Schema.String, f: Hash, c: Hash })

const decodeBody = Schema.decodeUnknownResult(Schema.fromJsonString(Body))

const serialize = (v: number, a: string, f: string): string =>
  Base64Url.encode(JSON.stringify({ v, a, f, c: checksum(v, a, f) }))

/** A canonical string of a list's filters: keys sorted, undefined values dropped. */
export const filterKey = (filters: Readonly<Record<string, string | undefined>>): string =>
  JSON.stringify(
    Object.entries(filters)
      .filter((entry): entry is [string, string] => entry[1] !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  )

/** Encodes a position as base64url of `{"v":1,"a":after,"f":hash(filter),"c":checksum}`. */
export const encode = (position: Position): string => serialize(VERSION, position.after, fnv1a(position.filter))

const invalid = (why: string): InvalidRequest =>
  new InvalidRequest({
    reason: "invalid_cursor",
    message: `Invalid cursor: ${why}; request the first page again without a cursor`
  })

/** Decodes a cursor issued for the same filters; any other input is `invalid_cursor`, never a defect. */
export const decode = (cursor: string, filter: string): Result.Result<{ readonly after: string }, InvalidRequest> => {
  if (cursor.length === 0) return Result.fail(invalid("it is empty"))
  if (cursor.length > MAX_LENGTH) return Result.fail(invalid("it is too long"))
  const text = Base64Url.decodeString(cursor)
  if (Result.isFailure(text)) return Result.fail(invalid("it is not base64url"))
  const body = decodeBody(text.success)
  if (Result.isFailure(body)) return Result.fail(invalid("it is malformed"))
  const { a, c, f, v } = body.success
  if (v !== VERSION) return Result.fail(invalid("its version is not supported"))
  // Any other spelling of a valid body (extra keys, other padding or trailing bits) is a modified cursor too.
  if (c !== checksum(v, a, f) || serialize(v, a, f) !== cursor) return Result.fail(invalid("it was modified"))
  if (f !== fnv1a(filter)) return Result.fail(invalid("it was issued for other filters"))
  return Result.succeed({ after: a })
}
