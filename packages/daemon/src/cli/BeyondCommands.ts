/**
 * What no hosted connector platform offers, from the command line:
 *
 * - `switchboard explain <connection> [METHOD path | --tool name]`: the dry run of a call (see `Explain`): which
 *   credential was chosen and why, the mutations applied, the URL and headers with secrets masked, the policy
 *   verdict, breaker and rate-limit state and the SSRF decision. Nothing is sent. Through a running daemon the
 *   breaker state is the daemon's; embedded it is this process's (always closed).
 * - `switchboard audit verify [--org o]`: checks every organization's audit hash chain (see `AuditChain`) and
 *   reports each edited, missing, reordered or truncated record; exit code 10 when a chain is broken.
 * - `switchboard audit export --jsonl [--org o]`: the chained records, one JSON object per line, in chain order.
 *   Both read the data directory's database file directly, with or without a running daemon. `verify` opens the
 *   sealed chain heads with the master key (a chain rewritten without the key is caught); when no key is
 *   available it still checks the hashes and says the heads' seals were not checked.
 */
import * as Sqlite from "@switchboard/adapters/sqlite"
import * as AuditChain from "@switchboard/core/AuditChain"
import * as Explain from "@switchboard/core/Explain"
import { ValidationFailed } from "@switchboard/core/Errors"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { Argument, Command, Flag } from "effect/cli"
import * as Fs from "node:fs"
import * as Layers from "../Layers.ts"
import { type commands, root } from "./Commands.ts"
import * as Output from "./Output.ts"
import { withCallsService } from "./WithCalls.ts"

const invalid = (message: string, path = "") =>
  new ValidationFailed({ message, details: { issues: [{ path, message }] } })

/** Run `f` with the `Explainer` reached the way the root flags say (embedded or through the daemon). */
const withExplainer = <A, E>(f: (explainer: Explain.Explainer["Service"]) => Effect.Effect<A, E>) =>
  withCallsService(Explain.Explainer, "explain", f)

/** The human form of an explanation. */
export const render = (e: Explain.Explanation): string => {
  const lines: Array<string> = []
  const c = e.connection
  lines.push(
    Output.details([
      ["connection", `${c.name} (${c.id})`],
      ["connector", `${c.connector} v${c.connector_version}${c.pinned ? " (pinned)" : ""}, ${c.kind}`],
      ["access", `${c.access_scope}${c.is_service_account ? ", service account" : ""}, owner ${c.owner}`],
      ["status", c.status],
      ["principal", `${e.principal.user} (${e.principal.role}) in ${e.principal.org}/${e.principal.workspace}`],
      ["policy", e.policy.allowed ? `allow ${e.policy.action}` : `deny ${e.policy.action}: ${e.policy.reason ?? ""}`],
      [
        "credential",
        e.credential.chosen !== null
          ? `${e.credential.chosen.scope}/${e.credential.chosen.name} (${e.credential.chosen.id})`
          : e.credential.source
      ],
      ["auth type", e.credential.auth_type ?? "-"],
      ["fields", e.credential.fields.join(", ") || "-"],
      ["why", e.credential.why]
    ])
  )
  if (e.credential.chain.length > 0) {
    lines.push("", "resolution chain:")
    for (const step of e.credential.chain) {
      lines.push(`  ${step.outcome.padEnd(11)}  ${step.scope}/${step.name}  (${step.owner})`)
    }
  }
  lines.push("", `mutations: ${e.mutations.length === 0 ? "none" : e.mutations.join(", ")}`)
  const r = e.request
  lines.push(
    "",
    r.tool === null ? `request: ${r.method ?? ""} ${r.url ?? "(not rendered)"}` : `tool: ${r.tool} at ${r.url ?? "-"}`
  )
  for (const [name, value] of Object.entries(r.headers)) lines.push(`  ${name}: ${value}`)
  const rl = e.resilience.rate_limit
  lines.push(
    "",
    `circuit: ${e.resilience.circuit}`,
    `rate limit: ${rl.requests_per_second}/s, bursts of ${rl.burst} (${rl.source}); ${rl.tokens_available} calls may go now`,
    `ssrf: ${e.ssrf.decision}${e.ssrf.addresses.length > 0 ? ` [${e.ssrf.addresses.join(", ")}]` : ""}${
      e.ssrf.rule === null ? "" : ` rule ${e.ssrf.rule}`
    }: ${e.ssrf.message}`
  )
  if (e.error !== null) lines.push("", `the call would fail: ${e.error.message} (${e.error.code})`)
  lines.push("", "nothing was sent")
  return lines.join("\n")
}

export const explain = Command.make(
  "explain",
  {
    connection: Argument.String("connection").pipe(Argument.withDescription("Connection id or name")),
    method: Argument.String("method").pipe(
      Argument.withDescription("The HTTP method (default GET)"),
      Argument.optional
    ),
    path: Argument.String("path").pipe(Argument.withDescription("The path below the base URL"), Argument.optional),
    tool: Flag.String("tool").pipe(Flag.withDescription("Explain a call of this MCP tool instead"), Flag.optional)
  },
  Effect.fn(function* (input) {
    const flags = yield* root
    const tool = Option.getOrUndefined(input.tool)
    if (tool !== undefined && Option.isSome(input.method)) {
      return yield* invalid("give either METHOD path or --tool, not both", "tool")
    }
    if (Option.isSome(input.method) && Option.isNone(input.path)) {
      return yield* invalid("give the path after the method", "path")
    }
    const query: Record<string, string> = {}
    if (tool !== undefined) query["tool"] = tool
    if (Option.isSome(input.method)) query["method"] = input.method.value.toUpperCase()
    if (Option.isSome(input.path)) query["path"] = input.path.value
    const explanation = yield* withExplainer((explainer) => explainer.explain(input.connection, query))
    yield* Output.print(flags.json, explanation, () => render(explanation))
  })
).pipe(
  Command.withDescription(
    "Dry-run a call: the credential chosen and why, mutations, URL, masked headers, policy, breaker, SSRF (sends nothing)"
  ),
  Command.withExamples([
    { command: "switchboard explain github GET /user", description: "Why does this call answer 401?" },
    { command: "switchboard explain linear --tool create_issue", description: "Explain an MCP tool call" }
  ])
)

// ------------------------------------------------------------------------------------------------- audit chain

/** The exit code of `audit verify` when a chain is broken. */
export const brokenChainExitCode = 10

/**
 * Run `f` with the `AuditChain`: the one in context (tests, embedders), else the data directory's database file.
 * A data directory without a database has no records.
 */
const withChain = <A, E, R>(f: (chain: AuditChain.AuditChain["Service"]) => Effect.Effect<A, E, R>, empty: A) =>
  Effect.gen(function* () {
    const given = yield* Effect.serviceOption(AuditChain.AuditChain)
    if (Option.isSome(given)) return yield* f(given.value)
    const flags = yield* root
    const paths = Layers.resolvePaths({ home: Option.getOrUndefined(flags.home) })
    if (!Fs.existsSync(paths.database)) return empty
    const database = Sqlite.Database.layer({
      filename: paths.database,
      schemaVersion: Sqlite.Migrations.latestVersion
    })
    const unkeyed = Sqlite.AuditChain.layer.pipe(Layer.provide(database))
    const keyed = Sqlite.AuditChain.layer.pipe(
      Layer.provide(Layer.merge(database, Layers.sealerLayer(paths))),
      Layer.catchTag("SealError", (error) =>
        error.reason === "key_unavailable" ? unkeyed : Layer.effect(AuditChain.AuditChain, Effect.fail(error))
      )
    )
    return yield* Effect.flatMap(Effect.service(AuditChain.AuditChain), f).pipe(Effect.provide(keyed))
  })

const orgFlag = Flag.String("org").pipe(Flag.withDescription("Only this organization"), Flag.optional)

const orgsOf = (chain: AuditChain.AuditChain["Service"], org: Option.Option<string>) =>
  Option.isSome(org) ? Effect.succeed([org.value]) : chain.orgs()

const auditVerify = Command.make(
  "verify",
  { org: orgFlag },
  Effect.fn(function* ({ org }) {
    const flags = yield* root
    const results = yield* withChain(
      (chain) =>
        Effect.flatMap(orgsOf(chain, org), (orgs) =>
          Effect.forEach(orgs, (o) =>
            Effect.map(chain.links(o), (read) =>
              AuditChain.verify(o, read.links, read.head, read.unchained, chain.digest)
            )
          )
        ),
      [] as ReadonlyArray<AuditChain.Verification>
    )
    const ok = results.every((r) => r.ok)
    yield* Output.print(flags.json, { ok, data: results }, () =>
      results.length === 0
        ? "no audit records"
        : results
            .map((r) => {
              const head = r.head === null ? "" : `, head ${r.head.seq} ${r.head.hash.slice(0, 12)}…`
              const legacy = r.unchained === 0 ? "" : ` (${r.unchained} older unchained records not verifiable)`
              const seal =
                r.head_seal === "unsealed"
                  ? " (head not sealed yet: sealed at the next record)"
                  : r.head_seal === "unchecked"
                    ? " (head seal not checked: no master key)"
                    : ""
              const title = `${r.org}: ${r.records} records${head}${legacy}${seal}: ${r.ok ? "chain intact" : "TAMPERED"}`
              return [title, ...r.problems.map((p) => `  ${p.problem.padEnd(11)}  ${p.message}`)].join("\n")
            })
            .join("\n")
    )
    if (!ok) yield* Effect.sync(() => void (process.exitCode = brokenChainExitCode))
  })
).pipe(
  Command.withDescription(
    "Verify the audit log's hash chains: any edited, deleted or reordered record is reported (exit 10)"
  )
)

const auditExport = Command.make(
  "export",
  {
    org: orgFlag,
    jsonl: Flag.Boolean("jsonl").pipe(
      Flag.withDescription("JSON lines: one {seq, prev_hash, hash, record} per line (the only format)"),
      Flag.withDefault(true)
    )
  },
  Effect.fn(function* ({ org }) {
    yield* withChain(
      (chain) =>
        Effect.flatMap(orgsOf(chain, org), (orgs) =>
          Effect.forEach(orgs, (o) =>
            Effect.flatMap(chain.links(o), (read) =>
              Effect.forEach(read.links, (link) =>
                link.record === undefined
                  ? Effect.void
                  : Console.log(
                      JSON.stringify({ seq: link.seq, prev_hash: link.prev_hash, hash: link.hash, record: link.record })
                    )
              )
            )
          )
        ),
      undefined
    )
  })
).pipe(Command.withDescription("Export the hash-chained audit log as JSON lines, in chain order"))

/** `audit` with its `verify` and `export` subcommands. */
export const withAuditCommands = (audit: (typeof commands)[4]) =>
  audit.pipe(Command.withSubcommands([auditVerify, auditExport]))

/** The commands of this module, for `Main.ts`. */
export const beyondCommands = [explain] as const
