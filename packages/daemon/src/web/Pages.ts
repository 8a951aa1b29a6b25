/**
 * The server-rendered pages: the layout, the connect page (OAuth or a static credential form), the result page of
 * a flow, and the dashboard with its guided connector form. An OAuth connector's account fields are collected on its
 * connect page, beside the scopes. Pure functions of their data to `Html`; every value
 * is escaped by `html`. No script: forms post back and the server redirects.
 */
import type { AuditRecord } from "@switchboard/core/AuditLog"
import type * as AuthPattern from "@switchboard/core/AuthPattern"
import type * as Connection from "@switchboard/core/Connection"
import type * as Connector from "@switchboard/core/Connector"
import { type Html, html } from "./Html.ts"
import { csrfField } from "./Security.ts"

export const stylePath = "/ui/style.css"
export const dashboardPath = "/ui"
export const connectPath = (connectionId: string) => `/ui/connect/${encodeURIComponent(connectionId)}`
export const testPath = (connectionId: string) => `/ui/connections/${encodeURIComponent(connectionId)}/test`
export const connectorsPath = "/ui/connectors"

/** The whole document around a page body. */
export const layout = (title: string, body: Html, bodyClass = ""): Html =>
  html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Switchboard</title><link rel="stylesheet" href="${stylePath}"></head>
<body class="${bodyClass}"><header><a class="brand" href="${dashboardPath}">Switchboard</a>
<a href="${dashboardPath}">Dashboard</a></header><main>${body}</main></body></html>`

const csrfInput = (csrf: string) => html`<input type="hidden" name="${csrfField}" value="${csrf}">`

const connectorHeader = (connector: Connector.Connector) =>
  html`<div class="connector">${
    connector.icon_url === undefined ? null : html`<img src="${connector.icon_url}" alt="">`
  }<div><strong>${connector.display_name}</strong> <span class="muted">(${connector.name}, ${connector.kind})</span>${
    connector.description === undefined ? null : html`<div class="muted">${connector.description}</div>`
  }</div></div>`

/** One field the user fills in. */
export interface FieldInput {
  readonly spec: AuthPattern.FieldSpec
  readonly required: boolean
  readonly secret: boolean
}

/** A scope on the connect page; required ones are always asked for. */
export interface ScopeChoice {
  readonly scope: string
  readonly label: string
  readonly description: string | undefined
  readonly required: boolean
}

export interface ConnectPage {
  readonly connector: Connector.Connector
  readonly connection: Connection.Connection
  readonly pattern: AuthPattern.AuthPattern | undefined
  readonly fields: ReadonlyArray<FieldInput>
  readonly accountFields: ReadonlyArray<FieldInput>
  readonly scopes: ReadonlyArray<ScopeChoice>
  readonly csrf: string
  readonly error?: string | undefined
  readonly fieldErrors?: Readonly<Record<string, string>> | undefined
}

const fieldRow = (field: FieldInput, error: string | undefined) =>
  html`<label for="f-${field.spec.field_name}">${field.spec.label ?? field.spec.field_name}${
    field.required ? " *" : ""
  }</label>
<input id="f-${field.spec.field_name}" name="value.${field.spec.field_name}" type="${field.secret ? "password" : "text"}"
 autocomplete="off"${field.required ? html` required` : null}>${
   field.spec.hint === undefined ? null : html`<span class="hint">${field.spec.hint}</span>`
 }${error === undefined ? null : html`<span class="field-error" data-field="${field.spec.field_name}">${error}</span>`}`

/** The connect page of a connection. */
export const connectPage = (page: ConnectPage): Html => {
  const { connection, pattern } = page
  const body = html`<h1>Connect ${page.connector.display_name}</h1>
<div class="card">${connectorHeader(page.connector)}
<p>Connection <strong>${connection.name}</strong> · status
<span class="status-${connection.status}" id="status">${connection.status}</span>${
    connection.account_label === null ? null : html` · account <strong>${connection.account_label}</strong>`
  }</p></div>
${page.error === undefined ? null : html`<p class="error" id="error">${page.error}</p>`}
${
  pattern === undefined
    ? html`<p>This connector has no auth pattern the page can collect; use <code>switchboard credentials set</code>.</p>`
    : pattern.type === "OAUTH"
      ? html`<form class="stack" method="post" action="${connectPath(connection.id)}/oauth">${csrfInput(page.csrf)}
<h2>Scopes</h2>${
          page.scopes.length === 0
            ? html`<p class="muted">The server decides the scopes${pattern.is_mcp === true ? " (MCP authorization)" : ""}.</p>`
            : html`<ul class="scopes">${page.scopes.map(
                (s) =>
                  html`<li><label><input type="checkbox" name="scope" value="${s.scope}" checked${
                    s.required ? html` disabled` : null
                  }> ${s.label}${s.required ? " (required)" : ""}</label>${
                    s.description === undefined ? null : html` <span class="muted">${s.description}</span>`
                  }</li>`
              )}</ul>`
        }${
          page.accountFields.length === 0
            ? null
            : html`<h2>Account fields</h2>
<p class="muted">Stored sealed with this connection's tokens, before the authorization starts.</p>
${page.accountFields.map((f) => fieldRow(f, page.fieldErrors?.[f.spec.field_name]))}`
        }
<p><button type="submit" id="connect">Connect</button></p></form>`
      : html`<form class="stack" method="post" action="${connectPath(connection.id)}/credential">${csrfInput(page.csrf)}
<h2>${pattern.display_name ?? pattern.type}</h2>
<p class="muted">Stored sealed on this machine; never shown again.</p>
${[...page.fields, ...page.accountFields].map((f) => fieldRow(f, page.fieldErrors?.[f.spec.field_name]))}
<p><button type="submit" id="save">Save credential</button></p></form>`
}`
  return layout(`Connect ${page.connector.display_name}`, body)
}

/** The page the OAuth callback (or a credential form) lands on. */
export const resultPage = (
  outcome:
    | { readonly ok: true; readonly connector: string; readonly account: string | null; readonly connection?: string }
    | { readonly ok: false; readonly message: string; readonly code?: string | undefined }
): Html =>
  outcome.ok
    ? layout(
        "Connected",
        html`<h1>Connected</h1><p id="result">Switchboard is connected to <strong>${outcome.connector}</strong>${
          outcome.account === null ? null : html` as <strong id="account">${outcome.account}</strong>`
        }.</p><p>You can close this window, or go to the <a href="${dashboardPath}">dashboard</a>.</p>`,
        "result-ok"
      )
    : layout(
        "Authorization failed",
        html`<h1>Authorization failed</h1><p id="result" class="error">${outcome.message}</p>${
          outcome.code === undefined ? null : html`<p class="muted">Code: <code>${outcome.code}</code></p>`
        }<p><a href="${dashboardPath}">Dashboard</a></p>`,
        "result-failed"
      )

/** The values and errors of the guided connector form, kept when it is shown again. */
export interface ConnectorForm {
  readonly values: Readonly<Record<string, string>>
  readonly errors: Readonly<Record<string, string>>
  readonly error?: string | undefined
}

export const emptyForm: ConnectorForm = { values: { kind: "mcp", auth_type: "OAUTH" }, errors: {} }

export interface Dashboard {
  readonly connectors: ReadonlyArray<Connector.Connector>
  readonly connections: ReadonlyArray<Connection.Connection>
  readonly audit: ReadonlyArray<AuditRecord>
  readonly csrf: string
  readonly form: ConnectorForm
  readonly notice?: string | undefined
}

const formField = (form: ConnectorForm, name: string, label: string, input: Html, hint?: string) =>
  html`<label for="c-${name}">${label}</label>${input}${hint === undefined ? null : html`<span class="hint">${hint}</span>`}${
    form.errors[name] === undefined
      ? null
      : html`<span class="field-error" id="error-${name}" data-field="${name}">${form.errors[name]}</span>`
  }`

const textInput = (form: ConnectorForm, name: string, type = "text", placeholder = "") =>
  html`<input id="c-${name}" name="${name}" type="${type}" value="${form.values[name] ?? ""}" placeholder="${placeholder}">`

const select = (form: ConnectorForm, name: string, options: ReadonlyArray<readonly [string, string]>) =>
  html`<select id="c-${name}" name="${name}">${options.map(
    ([value, label]) =>
      html`<option value="${value}"${form.values[name] === value ? html` selected` : null}>${label}</option>`
  )}</select>`

const connectorForm = (form: ConnectorForm, csrf: string) =>
  html`<form class="stack card" method="post" action="${connectorsPath}" id="add-connector" novalidate>${csrfInput(csrf)}
${form.error === undefined ? null : html`<p class="error" id="form-error">${form.error}</p>`}
${formField(
  form,
  "kind",
  "Type",
  select(form, "kind", [
    ["mcp", "MCP server"],
    ["http", "REST API"]
  ])
)}
${formField(form, "display_name", "Display name", textInput(form, "display_name", "text", "Example MCP"))}
${formField(form, "description", "Description", textInput(form, "description"))}
${formField(form, "icon_url", "Icon URL (optional)", textInput(form, "icon_url", "url", "https://cdn.example.com/icon.svg"), "Must start with https://")}
${formField(form, "proxy_url", "Server URL", textInput(form, "proxy_url", "url", "https://app.example.com/mcp"), "The MCP server or the API's base URL")}
${formField(
  form,
  "metadata",
  "Metadata (optional)",
  html`<textarea id="c-metadata" name="metadata" rows="3" placeholder="team=platform">${form.values["metadata"] ?? ""}</textarea>`,
  "One key=value per line; values are plain strings"
)}
${formField(
  form,
  "auth_type",
  "Auth type",
  select(form, "auth_type", [
    ["OAUTH", "OAuth"],
    ["BEARER", "Bearer token"],
    ["API_KEY", "API key"],
    ["BASIC", "Basic (REST)"]
  ])
)}
${formField(form, "authorize_uri", "Authorize URL (REST OAuth only)", textInput(form, "authorize_uri", "url"))}
${formField(form, "token_uri", "Token URL (REST OAuth only)", textInput(form, "token_uri", "url"))}
<p><button type="submit" id="save-connector">Save connector</button></p></form>`

const statusCell = (c: Connection.Connection) => html`<span class="status-${c.status}">${c.status}</span>`

/** The dashboard. */
export const dashboard = (d: Dashboard): Html => {
  const connectorName = (id: string) => d.connectors.find((c) => c.id === id)?.display_name ?? id
  const body = html`<h1>Dashboard</h1>
${d.notice === undefined ? null : html`<p id="notice">${d.notice}</p>`}
<h2>Connectors</h2>${
    d.connectors.length === 0
      ? html`<p class="muted">No connectors yet.</p>`
      : html`<table id="connectors"><tr><th>Name</th><th>Type</th><th>Auth</th><th>URL</th><th>Version</th></tr>${d.connectors.map(
          (c) =>
            html`<tr data-connector="${c.name}"><td><strong>${c.display_name}</strong><br><span class="muted">${c.name}</span></td>
<td>${c.kind}</td><td>${c.auth_patterns.map((p) => p.type).join(", ") || "—"}</td><td>${c.proxy_url ?? c.command?.program ?? ""}</td><td>${c.version}</td></tr>`
        )}</table>`
  }
<h2>Connections</h2>${
    d.connections.length === 0
      ? html`<p class="muted">No connections yet.</p>`
      : html`<table id="connections"><tr><th>Name</th><th>Connector</th><th>Status</th><th>Account</th><th>Last test</th><th>Last error</th><th></th></tr>${d.connections.map(
          (c) =>
            html`<tr data-connection="${c.name}"><td>${c.name}</td><td>${connectorName(c.connector_id)}</td><td>${statusCell(c)}</td>
<td>${c.account_label ?? ""}</td><td>${c.last_tested_at ?? "never"}</td><td class="error last-error">${c.last_error ?? ""}</td>
<td><form class="inline" method="post" action="${testPath(c.id)}">${csrfInput(d.csrf)}<button class="secondary" type="submit">Test</button></form>
<a href="${connectPath(c.id)}">Connect</a></td></tr>`
        )}</table>`
  }
<h2>Recent audit</h2>${
    d.audit.length === 0
      ? html`<p class="muted">Nothing recorded yet.</p>`
      : html`<table id="audit"><tr><th>At</th><th>Actor</th><th>Action</th><th>Outcome</th><th>Target</th><th>Error</th></tr>${d.audit.map(
          (a) =>
            html`<tr><td>${a.at}</td><td>${a.actor}</td><td>${a.action}</td><td>${a.outcome}</td><td>${a.target ?? a.tool ?? a.path ?? ""}</td><td>${a.error_code ?? ""}</td></tr>`
        )}</table>`
  }
<h2>Add a connector</h2>${connectorForm(d.form, d.csrf)}`
  return layout("Dashboard", body)
}

/** A short page for refusals (wrong address, no session, bad CSRF token, not found). */
export const message = (title: string, text: string): Html =>
  layout(title, html`<h1>${title}</h1><p class="error" id="result">${text}</p>`)
