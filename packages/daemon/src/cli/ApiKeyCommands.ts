/**
 * `switchboard apikey create|list|revoke`: the API keys of a team server (see `ApiKeys`). They work on the store
 * itself (the data directory's SQLite file, or the PostgreSQL database of `store_url`), never through the daemon:
 * they are for the admin of the server host. `create` prints the key once; afterwards only its prefix is shown.
 */
import type { ApiKey } from "@switchboard/core/ApiKeyStore"
import { ApiKeyStore } from "@switchboard/core/ApiKeyStore"
import * as Principal from "@switchboard/core/Principal"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { Argument, Command, Flag } from "effect/cli"
import * as ApiKeys from "../ApiKeys.ts"
import * as Layers from "../Layers.ts"
import { root } from "./Commands.ts"
import * as Output from "./Output.ts"

/** Run `effect` with the `ApiKeyStore` of the store the data directory's configuration names. */
const withKeys = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const flags = yield* root
    const paths = Layers.resolvePaths({ home: Option.getOrUndefined(flags.home) })
    yield* Layers.ensureDataDir(paths)
    const config = yield* Layers.readConfig(paths)
    const context = yield* Layer.build(
      Layers.oauthStoreLayer({ kind: "sqlite", paths, env: process.env, storeUrl: config.storeUrl })
    )
    return yield* effect.pipe(Effect.provideService(ApiKeyStore, Context.get(context, ApiKeyStore)))
  }).pipe(Effect.scoped)

const columns: ReadonlyArray<Output.Column<ApiKey>> = [
  { header: "id", get: (k) => k.id },
  { header: "prefix", get: (k) => k.prefix },
  { header: "name", get: (k) => k.name },
  { header: "org", get: (k) => k.org },
  { header: "workspace", get: (k) => k.workspace },
  { header: "user", get: (k) => k.user },
  { header: "role", get: (k) => k.role },
  { header: "created", get: (k) => k.created_at },
  { header: "last used", get: (k) => k.last_used_at },
  { header: "revoked", get: (k) => k.revoked_at }
]

const create = Command.make(
  "create",
  {
    org: Flag.String("org").pipe(Flag.withDescription("The organization the key acts in")),
    workspace: Flag.String("workspace").pipe(Flag.withDescription("The workspace the key acts in")),
    user: Flag.String("user").pipe(Flag.withDescription("The user the key acts as")),
    role: Flag.Literals("role", Principal.Role.literals).pipe(Flag.withDescription("admin, editor or viewer")),
    name: Flag.String("name").pipe(Flag.withDescription("A label: who or what holds the key"), Flag.optional)
  },
  Effect.fn(function* ({ org, workspace, user, role, name }) {
    const flags = yield* root
    const { key, secret } = yield* withKeys(
      ApiKeys.create({ principal: { org, workspace, user, role }, name: Option.getOrUndefined(name) })
    )
    yield* Console.error(
      "warning: the API key follows on stdout, shown this once; store it now (a secret store). Only its prefix " +
        `(${key.prefix}) is kept: a lost key cannot be shown again, only revoked (switchboard apikey revoke ${key.id})`
    )
    yield* Output.print(flags.json, { ...key, key: Redacted.value(secret) }, () => Redacted.value(secret))
  })
).pipe(Command.withDescription("Make an API key for a principal (shown once)"))

const list = Command.make(
  "list",
  {},
  Effect.fn(function* () {
    const flags = yield* root
    const keys = yield* withKeys(ApiKeys.list)
    yield* Output.print(flags.json, { data: keys }, () => Output.table(keys, columns))
  })
).pipe(Command.withDescription("List the API keys (prefixes only, never a key)"))

const revoke = Command.make(
  "revoke",
  { id: Argument.String("id").pipe(Argument.withDescription("The key's id (ak_…)")) },
  Effect.fn(function* ({ id }) {
    const flags = yield* root
    const revoked = yield* withKeys(ApiKeys.revoke(id))
    if (Option.isNone(revoked)) {
      const body = { error: { code: "api_key_not_found", message: `there is no API key ${id}` } }
      yield* Console.error(flags.json ? JSON.stringify(body, null, 2) : Output.renderFailure(body))
      yield* Effect.sync(() => (process.exitCode = 3))
      return
    }
    yield* Output.print(flags.json, revoked.value, () => `revoked ${id} at ${revoked.value.revoked_at}`)
  })
).pipe(Command.withDescription("Revoke an API key: every daemon refuses it from its next request"))

export const apikey = Command.make("apikey").pipe(
  Command.withDescription("Manage the API keys of a team server (on the store, not through the daemon)"),
  Command.withSubcommands([create, list, revoke])
)
