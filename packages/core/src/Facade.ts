/**
 * A Promise facade over the Switchboard service for callers that do not use Effect. It runs the service on
 * a ManagedRuntime built from the given store layer; failures reject with the typed error itself (with its
 * `code`, `status` and `message`), and `as(principal)` gives the same facade acting for someone else.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import type { AuditLog } from "./AuditLog.ts"
import type { ConnectionStore } from "./ConnectionStore.ts"
import type { ConnectorStore } from "./ConnectorStore.ts"
import type { CredentialVault } from "./CredentialVault.ts"
import * as Principal from "./Principal.ts"
import * as Switchboard from "./Switchboard.ts"

type Service = Switchboard.Switchboard["Service"]
export type Methods = {
  readonly [K in keyof Service]: Service[K] extends (...args: infer A) => Effect.Effect<infer R, infer _E, infer _Rq>
    ? (...args: A) => Promise<R>
    : never
}

/** The facade: every service method as a Promise, plus `as` and `dispose`. */
export interface SwitchboardClient extends Methods {
  /** The same Switchboard acting as another principal. */
  readonly as: (principal: Principal.Principal) => SwitchboardClient
  /** The principal calls run as. */
  readonly principal: Principal.Principal
  /** Release the stores (closes database files). */
  readonly dispose: () => Promise<void>
}

export type StoreServices = ConnectorStore | CredentialVault | ConnectionStore | AuditLog

export interface Options<E> {
  /** The store adapters: memory, SQLite, … */
  readonly layer: Layer.Layer<StoreServices, E>
  /** Who calls run as; the local admin by default. */
  readonly principal?: Principal.Principal
}

/** The Switchboard methods the facade offers (every service method). */
export const methodNames = [
  "createConnector",
  "listConnectors",
  "getConnector",
  "getConnectorVersion",
  "updateConnector",
  "deleteConnector",
  "authenticationMethods",
  "setCredential",
  "listCredentials",
  "deleteCredential",
  "createConnection",
  "listConnections",
  "getConnection",
  "deleteConnection",
  "setConnectionStatus",
  "resolveCall",
  "audit",
  "listAudit"
] as const satisfies ReadonlyArray<keyof Service>

/**
 * Runs effects needing some services (and the principal) as Promises: `runtime.runPromise` with the principal
 * provided. Facades built on a larger runtime (the daemon's `createHub`) share it.
 */
export type Runner<R> = <A, E>(effect: Effect.Effect<A, E, R>) => Promise<A>

/** A runner for `principal` on `runtime`. */
export const runnerFor =
  <R, ER>(runtime: ManagedRuntime.ManagedRuntime<R, ER>, principal: Principal.Principal): Runner<R> =>
  (effect) =>
    runtime.runPromise(effect.pipe(Effect.provideService(Principal.CurrentPrincipal, principal)))

/** The Switchboard service's methods as Promises, run by `run`. */
export const switchboardMethods = (run: Runner<Switchboard.Switchboard>): Methods => {
  const call =
    (key: keyof Service) =>
    (...args: ReadonlyArray<unknown>) =>
      run(
        Effect.flatMap(Effect.service(Switchboard.Switchboard), (s) =>
          (s[key] as (...a: ReadonlyArray<unknown>) => Effect.Effect<unknown, unknown>)(...args)
        )
      )
  return Object.fromEntries(methodNames.map((key) => [key, call(key)])) as unknown as Methods
}

/** Start a Switchboard on the given stores and return its Promise facade. */
export const createSwitchboard = <E>(options: Options<E>): SwitchboardClient => {
  const runtime = ManagedRuntime.make(Switchboard.layer.pipe(Layer.provide(options.layer)))
  const bind = (principal: Principal.Principal): SwitchboardClient => ({
    ...switchboardMethods(runnerFor(runtime, principal)),
    principal,
    as: bind,
    dispose: () => runtime.dispose()
  })
  return bind(options.principal ?? Principal.local("local"))
}
