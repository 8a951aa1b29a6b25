/**
 * How the CLI shows things: aligned tables for people, JSON for scripts, errors in the one error shape, and
 * exit codes that say what kind of failure happened.
 */
import * as Errors from "@switchboard/core/Errors"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { DaemonError } from "../DaemonError.ts"

/** A column: header and how to read the cell from a row. */
export interface Column<A> {
  readonly header: string
  readonly get: (row: A) => string | number | boolean | null | undefined
}

const cell = (value: string | number | boolean | null | undefined): string =>
  value === null || value === undefined || value === "" ? "-" : String(value)

/** Render rows as a left-aligned table with a header line. */
export const table = <A>(rows: ReadonlyArray<A>, columns: ReadonlyArray<Column<A>>): string => {
  const cells = rows.map((row) => columns.map((c) => cell(c.get(row)).replace(/\s+/gu, " ")))
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => (r[i] ?? "").length)))
  const line = (values: ReadonlyArray<string>) =>
    values
      .map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd()
  return [line(columns.map((c) => c.header.toUpperCase())), ...cells.map(line)].join("\n")
}

/** Key/value lines for one object. */
export const details = (entries: ReadonlyArray<readonly [string, unknown]>): string => {
  const width = Math.max(...entries.map(([k]) => k.length))
  return entries
    .map(([k, v]) => `${k.padEnd(width)}  ${typeof v === "string" ? v : v === undefined ? "-" : JSON.stringify(v)}`)
    .join("\n")
}

export const printJson = (value: unknown) => Console.log(JSON.stringify(value, null, 2))

/** Print a value as JSON or in its human form. */
export const print = (json: boolean, value: unknown, human: () => string) =>
  json ? printJson(value) : Console.log(human())

/**
 * Exit codes: 0 success, 1 internal, 2 invalid input (400/422), 3 not found, 4 conflict, 5 forbidden or
 * unauthenticated, 6 upstream failure (502/503/504), 7 rate limited.
 */
export const exitCodeOf = (status: number): number => {
  if (status === 400 || status === 422) return 2
  if (status === 404) return 3
  if (status === 409) return 4
  if (status === 401 || status === 403) return 5
  if (status === 429) return 7
  if (status >= 502 && status <= 504) return 6
  return 1
}

const isSwitchboardError = Schema.is(Errors.SwitchboardError)
const isDaemonError = Schema.is(DaemonError)

/** The error body and exit code of any failure the CLI can meet. */
export const describeFailure = (error: unknown): { readonly body: Errors.ErrorBody; readonly exitCode: number } => {
  if (isSwitchboardError(error)) return { body: Errors.toErrorBody(error), exitCode: exitCodeOf(error.status) }
  if (isDaemonError(error)) {
    const exitCode =
      error.reason === "daemon_not_running"
        ? 3
        : error.reason === "daemon_running"
          ? 4
          : error.reason === "unauthorized"
            ? 5
            : 1
    return { body: { error: { code: error.code, message: error.message } }, exitCode }
  }
  return { body: { error: { code: "internal_error", message: "unexpected failure; see the log" } }, exitCode: 1 }
}

/** Render a failure for people: code, message, and each validation issue on its own line. */
export const renderFailure = (body: Errors.ErrorBody): string => {
  const lines = [`error: ${body.error.message} (${body.error.code})`]
  const issues = (
    body.error.details as { readonly issues?: ReadonlyArray<{ path: string; message: string }> } | undefined
  )?.issues
  for (const issue of issues ?? []) lines.push(`  ${issue.path === "" ? "(payload)" : issue.path}: ${issue.message}`)
  return lines.join("\n")
}

/** Print a failure to stderr (as JSON with --json) and give the exit code. */
export const reportFailure = (json: boolean, error: unknown) =>
  Effect.gen(function* () {
    const { body, exitCode } = describeFailure(error)
    yield* Console.error(json ? JSON.stringify(body, null, 2) : renderFailure(body))
    return exitCode
  })
