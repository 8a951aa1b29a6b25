/**
 * The connect page and the dashboard, served by the browser-facing listener (`OAuthRoutes.layer` with `web`) under
 * `/ui`. A request must come to the listener's own loopback `Host`, carry the per-start secret (`?k=` once, then the
 * session cookie), and a POST must carry the CSRF token (`Security`). The pages act as the daemon's local principal
 * through the same `Switchboard`, `OAuth` and `ConnectionTests` services as the REST API.
 */
import * as AuthPattern from "@switchboard/core/AuthPattern"
import * as Connector from "@switchboard/core/Connector"
import type { SwitchboardError } from "@switchboard/core/Errors"
import * as OAuth from "@switchboard/core/OAuth"
import * as Principal from "@switchboard/core/Principal"
import * as Switchboard from "@switchboard/core/Switchboard"
import * as Testing from "@switchboard/core/Testing"
import * as Effect from "effect/Effect"
import { HttpRouter, type HttpServerRequest, HttpServerResponse } from "effect/http"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as ConnectorForm from "./ConnectorForm.ts"
import type { Html } from "./Html.ts"
import * as Pages from "./Pages.ts"
import * as Security from "./Security.ts"

/** Where the listener is, once it listens (filled in by `OAuthRoutes.layer`). */
export interface Cell {
  port: number | undefined
}

/**
 * Headers of every page: never cached or framed, no script at all, no referrer to other origins (a URL carries the
 * secret once). `same-origin` rather than `no-referrer`, so the browser's own POSTs carry a real `Origin`.
 */
export const securityHeaders = {
  "cache-control": "no-store",
  "referrer-policy": "same-origin",
  "content-security-policy":
    "default-src 'none'; style-src 'self'; img-src 'self' https:; base-uri 'none'; frame-ancestors 'none'",
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff"
}

/** An HTML response with the security headers. */
export const respond = (status: number, body: Html, headers: Record<string, string> = {}) =>
  HttpServerResponse.text(body.value, {
    status,
    contentType: "text/html; charset=utf-8",
    headers: { ...securityHeaders, ...headers }
  })

const seeOther = (location: string, headers: Record<string, string> = {}) =>
  HttpServerResponse.empty({ status: 303, headers: { ...securityHeaders, location, ...headers } })

const css = Fs.readFileSync(new URL("./style.css", import.meta.url), "utf8")

const wrongHost = () =>
  respond(421, Pages.message("Wrong address", "This page is served only at its own loopback address."))

/** The stylesheet route; served to anyone at the right `Host` (it holds nothing). */
export const styleRoute = (cell: Cell) =>
  HttpRouter.add("GET", Pages.stylePath, (request) =>
    Effect.succeed(
      cell.port === undefined || !Security.hostAllowed(request.headers["host"], cell.port)
        ? wrongHost()
        : HttpServerResponse.text(css, {
            contentType: "text/css; charset=utf-8",
            headers: { "cache-control": "no-store", "x-content-type-options": "nosniff" }
          })
    )
  )

// ---------------------------------------------------------------------------------------------------------------
// Where the pages are (for the create-connection answer and the daemon's log and status)

let current: { readonly cell: Cell; readonly keys: Security.Keys } | undefined

const originOf = (cell: Cell) => (cell.port === undefined ? undefined : `http://127.0.0.1:${cell.port}`)

/**
 * The connect page of a connection, with the per-start secret, when this process serves the pages (the daemon);
 * `null` otherwise (the embedded CLI, or before the listener is up).
 */
export const connectorPageUrl = (connectionId: string): string | null => {
  const origin = current === undefined ? undefined : originOf(current.cell)
  return current === undefined || origin === undefined
    ? null
    : `${origin}${Pages.connectPath(connectionId)}?${Security.secretParam}=${current.keys.secret}`
}

/** The dashboard URL with the per-start secret, or `null` when this process serves no pages. */
export const dashboardUrl = (): string | null => {
  const origin = current === undefined ? undefined : originOf(current.cell)
  return current === undefined || origin === undefined
    ? null
    : `${origin}${Pages.dashboardPath}?${Security.secretParam}=${current.keys.secret}`
}

// ---------------------------------------------------------------------------------------------------------------
// Routes

export interface WebOptions {
  /** Who the pages act as (the daemon's local principal). */
  readonly principal: Principal.Principal
  /** The secret of this start; a fresh random one when absent. */
  readonly keys?: Security.Keys | undefined
}

const maxBody = 64 * 1024

const readForm = (request: HttpServerRequest.HttpServerRequest) =>
  request.text.pipe(
    Effect.map((text) => (text.length > maxBody ? undefined : new URLSearchParams(text))),
    Effect.orElseSucceed(() => undefined)
  )

const lastSegment = (url: URL, index: number) => decodeURIComponent(url.pathname.split("/")[index] ?? "")

const failureText = (error: SwitchboardError) => `${error.message} (${error.code})`

/**
 * The non-empty `value.<field>` entries of a form; with `allowed`, the names outside it are given back as `unknown`
 * instead of taken.
 */
const formValues = (form: URLSearchParams, allowed?: ReadonlyArray<string>) => {
  const values: Record<string, string> = {}
  const unknown: Array<string> = []
  for (const [key, value] of form) {
    if (!key.startsWith("value.")) continue
    const name = key.slice("value.".length)
    if (allowed !== undefined && !allowed.includes(name)) unknown.push(name)
    else if (value !== "") values[name] = value
  }
  return { values, unknown }
}

/** A credential's validation issues by field name (`values.<field>` → `<field>`), for the form's field errors. */
const fieldErrorsOf = (error: SwitchboardError): Record<string, string> => {
  const fieldErrors: Record<string, string> = {}
  for (const issue of ConnectorForm.issuesOf(error.details))
    fieldErrors[issue.path.replace(/^values\./u, "")] = issue.message
  return fieldErrors
}

/** The connect page's data for a connection. */
const connectData = Effect.fn("Web.connectData")(function* (connectionId: string, csrf: string) {
  const sb = yield* Switchboard.Switchboard
  const connection = yield* sb.getConnection(connectionId)
  const connector = yield* sb.getConnector(connection.connector_id)
  const pattern =
    Connector.patternFor(connector, connection.auth_type ?? undefined) ??
    (connector.kind === "http" || connector.kind === "mcp" ? connector.auth_patterns[0] : undefined)
  const input = (spec: AuthPattern.FieldSpec, required: boolean): Pages.FieldInput => ({
    spec,
    required,
    secret: AuthPattern.isSecretField(spec)
  })
  const fields =
    pattern === undefined || pattern.type === "OAUTH"
      ? []
      : AuthPattern.credentialFields(pattern).map((s) => input(s, AuthPattern.isRequired(pattern, s)))
  const accountFields = (pattern?.account_fields ?? []).map((s) =>
    input(
      s,
      pattern === undefined
        ? false
        : pattern.type === "OAUTH"
          ? s.required === true
          : AuthPattern.isRequired(pattern, s)
    )
  )
  const scopes = (pattern?.oauth_config?.available_scopes ?? []).map((s) => ({
    scope: s.scope,
    label: s.display_name ?? s.scope,
    description: s.description,
    required: s.required === true
  }))
  return { connector, connection, pattern, fields, accountFields, scopes, csrf } satisfies Pages.ConnectPage
})

/** The routes under `/ui`, and `/` redirecting there. */
export const routes = (cell: Cell, options: WebOptions) => {
  const keys = options.keys ?? Security.makeKeys()
  const origin = () => originOf(cell) ?? ""
  const asPrincipal = Effect.provideService(Principal.CurrentPrincipal, options.principal)

  /** The session check: the secret in the query becomes the cookie (and leaves the URL); else the cookie. */
  const gate = <R>(
    request: HttpServerRequest.HttpServerRequest,
    handle: (url: URL) => Effect.Effect<HttpServerResponse.HttpServerResponse, never, R>
  ) => {
    const port = cell.port
    if (port === undefined || !Security.hostAllowed(request.headers["host"], port)) {
      return Effect.succeed(wrongHost())
    }
    const url = new URL(request.url, "http://127.0.0.1")
    const fromQuery = url.searchParams.get(Security.secretParam) ?? undefined
    if (fromQuery !== undefined && Security.same(fromQuery, keys.secret)) {
      url.searchParams.delete(Security.secretParam)
      return Effect.succeed(
        seeOther(`${url.pathname}${url.search}`, { "set-cookie": Security.sessionCookie(keys, port) })
      )
    }
    if (!Security.same(request.cookies[Security.cookieName(port)], keys.secret)) {
      return Effect.succeed(
        respond(
          403,
          Pages.message(
            "Not signed in",
            "Open the dashboard URL that `switchboard daemon status` prints; it carries this start's secret."
          )
        )
      )
    }
    return asPrincipal(handle(url))
  }

  /** A POST: the session, then the CSRF token and the origin. */
  const post = <R>(
    request: HttpServerRequest.HttpServerRequest,
    handle: (url: URL, form: URLSearchParams) => Effect.Effect<HttpServerResponse.HttpServerResponse, never, R>
  ) =>
    gate(request, (url) =>
      Effect.gen(function* () {
        const form = yield* readForm(request)
        if (form === undefined) return respond(400, Pages.message("Bad request", "The form could not be read."))
        if (
          !Security.formAllowed(keys, form.get(Security.csrfField) ?? undefined, request.headers["origin"], origin())
        ) {
          return respond(403, Pages.message("Refused", "The form's CSRF token is missing or wrong; reload the page."))
        }
        return yield* handle(url, form)
      })
    )

  const renderDashboard = (status: number, form: Pages.ConnectorForm, notice?: string) =>
    Effect.gen(function* () {
      const sb = yield* Switchboard.Switchboard
      const connectors = yield* sb.listConnectors({ limit: 100 })
      const connections = yield* sb.listConnections({ limit: 100 })
      const audit = yield* sb.listAudit({ limit: 20 })
      return respond(
        status,
        Pages.dashboard({
          connectors: connectors.data,
          connections: connections.data,
          audit: audit.data,
          csrf: keys.csrf,
          form,
          notice
        })
      )
    }).pipe(
      Effect.catch((error: SwitchboardError) =>
        Effect.succeed(respond(error.status, Pages.message("Error", failureText(error))))
      )
    )

  const connectPage = (connectionId: string, status: number, extra: Partial<Pages.ConnectPage> = {}) =>
    connectData(connectionId, keys.csrf).pipe(
      Effect.map((data) => respond(status, Pages.connectPage({ ...data, ...extra }))),
      Effect.catch((error: SwitchboardError) =>
        Effect.succeed(respond(error.status, Pages.message("Cannot connect", failureText(error))))
      )
    )

  return Layer.mergeAll(
    HttpRouter.add("GET", "/", (request) => gate(request, () => Effect.succeed(seeOther(Pages.dashboardPath)))),
    HttpRouter.add("GET", Pages.dashboardPath, (request) => gate(request, () => renderDashboard(200, Pages.emptyForm))),
    HttpRouter.add("POST", Pages.connectorsPath, (request) =>
      post(request, (_url, form) =>
        Effect.gen(function* () {
          const values: Record<string, string> = {}
          for (const name of [
            "kind",
            "display_name",
            "description",
            "icon_url",
            "proxy_url",
            "metadata",
            "auth_type",
            "authorize_uri",
            "token_uri"
          ]) {
            values[name] = form.get(name) ?? ""
          }
          const { payload, errors } = ConnectorForm.toPayload(values)
          if (Object.keys(errors).length > 0) return yield* renderDashboard(422, { values, errors })
          const sb = yield* Switchboard.Switchboard
          return yield* sb.createConnector(payload).pipe(
            Effect.as(seeOther(Pages.dashboardPath)),
            Effect.catch((error: SwitchboardError) =>
              renderDashboard(error.status, { values, ...ConnectorForm.errorsOf(error) })
            )
          )
        })
      )
    ),
    HttpRouter.add("POST", "/ui/connections/:id/test", (request) =>
      post(request, (url) =>
        Effect.gen(function* () {
          const tests = yield* Effect.serviceOption(Testing.ConnectionTests)
          if (tests._tag === "None")
            return yield* renderDashboard(503, Pages.emptyForm, "Connection tests are not available here.")
          const id = lastSegment(url, 3)
          return yield* tests.value.test(id).pipe(
            Effect.as(seeOther(Pages.dashboardPath)),
            Effect.catch((error: SwitchboardError) =>
              renderDashboard(error.status, Pages.emptyForm, failureText(error))
            )
          )
        })
      )
    ),
    HttpRouter.add("GET", "/ui/connect/:id", (request) =>
      gate(request, (url) => connectPage(lastSegment(url, 3), 200))
    ),
    HttpRouter.add("POST", "/ui/connect/:id/oauth", (request) =>
      post(request, (url, form) =>
        Effect.gen(function* () {
          const id = lastSegment(url, 3)
          const sb = yield* Switchboard.Switchboard
          const oauth = yield* OAuth.OAuth
          const scopes = form.getAll("scope")
          const data = yield* Effect.result(connectData(id, keys.csrf))
          if (data._tag === "Failure")
            return respond(data.failure.status, Pages.message("Cannot connect", failureText(data.failure)))
          const { connection, connector, pattern } = data.success
          // Only an OAuth pattern's account fields come from the page: never tokens or other fields.
          const accountFields = pattern?.type === "OAUTH" ? data.success.accountFields : []
          const { values, unknown } = formValues(
            form,
            accountFields.map((f) => f.spec.field_name)
          )
          if (unknown.length > 0) {
            const fieldErrors = Object.fromEntries(
              unknown.map((name) => [name, "not an account field of this connector"])
            )
            return yield* connectPage(id, 422, { error: `unknown fields: ${unknown.join(", ")}`, fieldErrors })
          }
          // Stored where the flow will put the tokens (the flow keeps the non-token values it finds there), with the
          // API's validation (required account fields); nothing to store when the connector asks for none.
          const store =
            accountFields.length === 0
              ? Effect.void
              : Effect.gen(function* () {
                  const principal = yield* Principal.CurrentPrincipal
                  const target = OAuth.tokenTarget(connection, principal)
                  yield* sb.setCredential(connector.id, target.scope, {
                    name: target.name,
                    auth_type: "OAUTH",
                    values
                  })
                })
          return yield* store.pipe(
            Effect.andThen(oauth.authorizationUrl(connection.connector_id, { connection: connection.id, scopes })),
            Effect.map(({ url: location }) => seeOther(location)),
            Effect.catch((error: SwitchboardError) =>
              connectPage(id, error.status, { error: failureText(error), fieldErrors: fieldErrorsOf(error) })
            )
          )
        })
      )
    ),
    HttpRouter.add("POST", "/ui/connect/:id/credential", (request) =>
      post(request, (url, form) =>
        Effect.gen(function* () {
          const id = lastSegment(url, 3)
          const sb = yield* Switchboard.Switchboard
          const data = yield* Effect.result(connectData(id, keys.csrf))
          if (data._tag === "Failure")
            return respond(data.failure.status, Pages.message("Cannot connect", failureText(data.failure)))
          const { connection, connector, pattern } = data.success
          if (pattern === undefined || pattern.type === "OAUTH") return yield* connectPage(id, 400)
          const { values } = formValues(form)
          const target = connection.credential ?? {
            scope: connection.access_scope === "organizational" ? ("organization" as const) : ("user" as const),
            name: "default"
          }
          return yield* sb
            .setCredential(connector.id, target.scope, { name: target.name, auth_type: pattern.type, values })
            .pipe(
              Effect.andThen(sb.setConnectionStatus(connection.id, { status: "active", last_error: null })),
              Effect.as(respond(200, Pages.resultPage({ ok: true, connector: connector.display_name, account: null }))),
              Effect.catch((error: SwitchboardError) =>
                connectPage(id, error.status, { error: failureText(error), fieldErrors: fieldErrorsOf(error) })
              )
            )
        })
      )
    ),
    Layer.effectDiscard(
      Effect.acquireRelease(
        Effect.sync(() => {
          current = { cell, keys }
        }),
        () =>
          Effect.sync(() => {
            if (current?.keys === keys) current = undefined
          })
      )
    )
  )
}
