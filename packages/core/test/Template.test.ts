import { assert, describe, it } from "@effect/vitest"
import * as Result from "effect/Result"
import * as fc from "fast-check"
import type { TemplateError } from "../src/Errors.ts"
import * as Template from "../src/Template.ts"

const ok = <A>(result: Result.Result<A, TemplateError>): A => {
  if (Result.isFailure(result)) assert.fail(`expected success, got ${result.failure.reason}: ${result.failure.message}`)
  return result.success
}

const err = <A>(result: Result.Result<A, TemplateError>): TemplateError => {
  if (Result.isSuccess(result)) assert.fail(`expected a failure, got ${String(result.success)}`)
  return result.failure
}

const url = (rendered: string): URL => {
  const parsed = URL.parse(rendered)
  if (parsed === null) assert.fail(`not a URL: ${rendered}`)
  return parsed
}

/** Any text, including astral code points, controls and URL delimiters. */
const anyText = fc.oneof(
  fc.string({ minLength: 1 }),
  fc.string({ unit: "binary", minLength: 1 }),
  fc.string({
    unit: fc.constantFrom("/", "?", "#", "&", "=", ".", "%", "+", " ", "\\", "@", ":", "a", "é", "😀"),
    minLength: 1
  })
)

const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/

/** A hostname by the module's rule: mixed case, labels of letters, digits and hyphens, last label not numeric. */
const hostname = fc.oneof(
  fc.domain(),
  fc
    .tuple(
      fc.array(fc.stringMatching(LABEL), { minLength: 0, maxLength: 3 }),
      fc.stringMatching(/^[A-Za-z](?:[A-Za-z0-9-]{0,20}[A-Za-z0-9])?$/)
    )
    .map(([labels, last]) => [...labels, last].join("."))
    .filter((host) => host.length <= 253)
)

const isPunycode = (host: string) => host.split(".").some((label) => label.toLowerCase().startsWith("xn--"))

const HOST_RULE_FIELD = "domain"

describe("Template", () => {
  describe("parse", () => {
    it("finds each placeholder and its position", () => {
      const parsed = ok(Template.parse("https://{{domain}}/api/{{ version }}/x?team={{team}}#{{section}}"))
      assert.deepStrictEqual(parsed.placeholders, [
        { name: "domain", position: "host" },
        { name: "version", position: "path" },
        { name: "team", position: "query" },
        { name: "section", position: "fragment" }
      ])
      assert.strictEqual(parsed.scheme, "https")
    })

    it("places placeholders by the first / ? # after the authority", () => {
      const positions = (template: string) => ok(Template.parse(template)).placeholders.map((p) => p.position)
      assert.deepStrictEqual(positions("http://{{sub}}.example.com:8080?a={{a}}/{{b}}#x/{{c}}?"), [
        "host",
        "query",
        "query",
        "fragment"
      ])
      assert.deepStrictEqual(positions("https://api.example.com#{{a}}"), ["fragment"])
      assert.deepStrictEqual(positions("HTTPS://{{a}}-api.example.com/{{b}}"), ["host", "path"])
    })

    it("refuses malformed templates with template_invalid", () => {
      for (const template of [
        "https://{{domain}/x",
        "https://domain}}/x",
        "https://{{}}/x",
        "https://{{  }}/x",
        "https://x/{{1abc}}",
        "https://x/{{a-b}}",
        "https://x/{{{a}}}",
        "https://x/{{a {{b}} }}",
        "{{scheme}}://x",
        "ht{{x}}tp://x",
        "ftp://x/{{a}}",
        "x/{{a}}",
        "https://",
        "https:///{{a}}",
        "https://user@{{domain}}/",
        "https://x/a b",
        "https://x/a\\b",
        "https://x/{a}",
        "https://x/../{{a}}",
        "https://{{host}}:{{port}}/",
        "https://[{{v6}}]/"
      ]) {
        assert.strictEqual(err(Template.parse(template)).reason, "template_invalid", template)
      }
    })
  })

  describe("fieldNames", () => {
    it("lists distinct names in order of first use", () => {
      assert.deepStrictEqual(Template.fieldNames("https://{{domain}}/{{ a }}/{{b}}?x={{a}}&y={{domain}}"), [
        "domain",
        "a",
        "b"
      ])
      assert.deepStrictEqual(Template.fieldNames("Bearer {{token}}"), ["token"])
      assert.deepStrictEqual(Template.fieldNames("no placeholders"), [])
      assert.deepStrictEqual(Template.fieldNames("{{broken"), [])
    })

    it("handles names that are Object.prototype keys", () => {
      const t = "https://x.com/{{__proto__}}/{{constructor}}"
      assert.deepStrictEqual(Template.fieldNames(t), ["__proto__", "constructor"])
      const values = Object.fromEntries([
        ["__proto__", "a"],
        ["constructor", "b"]
      ])
      assert.strictEqual(ok(Template.render(t, values)), "https://x.com/a/b")
      assert.deepStrictEqual(err(Template.render(t, {})).details, { fields: ["__proto__", "constructor"] })
    })
  })

  describe("render", () => {
    it("renders the documented example", () => {
      const rendered = ok(
        Template.render("https://{{domain}}/api/{{version}}/x?team={{team}}", {
          domain: "acme.example.com",
          version: "v2",
          team: "core & ops"
        })
      )
      assert.strictEqual(rendered, "https://acme.example.com/api/v2/x?team=core%20%26%20ops")
    })

    it("keeps a path value inside its segment", () => {
      const rendered = ok(Template.render("https://example.com/api/{{id}}/x", { id: "../admin?x=1#y" }))
      const u = url(rendered)
      assert.strictEqual(u.pathname, "/api/..%2Fadmin%3Fx%3D1%23y/x")
      assert.strictEqual(u.search, "")
      assert.strictEqual(u.hash, "")
    })

    it("refuses a value that would be a . or .. path segment", () => {
      for (const id of [".", ".."]) {
        const error = err(Template.render("https://example.com/api/{{id}}/x", { id }))
        assert.strictEqual(error.reason, "template_value_invalid")
        assert.deepStrictEqual(error.details, {
          field: "id",
          position: "path",
          rule: 'a path segment must not be "." or ".."'
        })
      }
      assert.strictEqual(
        ok(Template.render("https://example.com/api/v{{id}}/x", { id: ".." })),
        "https://example.com/api/v../x"
      )
    })

    it("accepts hostnames, IPv4, bracketed IPv6 and ports in the host", () => {
      const t = "https://{{domain}}/x"
      assert.strictEqual(ok(Template.render(t, { domain: "Example.COM" })), "https://Example.COM/x")
      assert.strictEqual(url(ok(Template.render(t, { domain: "10.0.0.1:8443" }))).host, "10.0.0.1:8443")
      assert.strictEqual(url(ok(Template.render(t, { domain: "[::1]:8080" }))).host, "[::1]:8080")
      assert.strictEqual(url(ok(Template.render(t, { domain: "[2001:db8::7]" }))).hostname, "[2001:db8::7]")
      assert.strictEqual(url(ok(Template.render(t, { domain: "[::ffff:1.2.3.4]" }))).hostname, "[::ffff:102:304]")
      assert.strictEqual(url(ok(Template.render(t, { domain: "localhost:443" }))).host, "localhost")
      assert.strictEqual(
        url(ok(Template.render("https://{{sub}}.example.com/", { sub: "eu-1" }))).hostname,
        "eu-1.example.com"
      )
    })

    it("refuses anything else in the host, naming the field and not the value", () => {
      for (const domain of [
        "evil.com/x",
        "a@b",
        "a b",
        "x?y",
        "#",
        "evil.com#",
        "evil.com\\x",
        "-a.com",
        "a-.com",
        "a..com",
        "a.com.",
        "a_b.com",
        "ex%61mple.com",
        "bücher.de",
        "1.2.3",
        "01.2.3.4",
        "256.1.1.1",
        "0x7f",
        "a.123",
        `${"a".repeat(64)}.com`,
        `${"a.".repeat(127)}ab`,
        "a.com:",
        "a.com:65536",
        "a.com:80:80",
        "a.com:-1",
        "[::1",
        "[1:2:3:4:5:6:7:8:9]",
        "[1::2::3]",
        "[fe80::1%25eth0]",
        "::1",
        "[::1]x"
      ]) {
        const error = err(Template.render("https://{{domain}}/x", { domain }))
        assert.strictEqual(error.reason, "template_value_invalid", domain)
        assert.include(error.message, '"domain"')
        if (domain.length > 3) assert.notInclude(error.message, domain)
      }
    })

    it("refuses a host value that breaks the literal around it", () => {
      const error = err(Template.render("https://{{sub}}.example.com:8443/", { sub: "a:80" }))
      assert.strictEqual(error.reason, "template_value_invalid")
      assert.strictEqual(
        err(Template.render("https://api.{{tld}}/", { tld: "a.123" })).reason,
        "template_value_invalid"
      )
    })

    it("treats a missing or empty value as template_value_missing, naming every missing field", () => {
      const t = "https://{{domain}}/{{a}}/{{b}}?c={{c}}"
      const error = err(Template.render(t, { domain: "x.com", a: "", c: undefined }))
      assert.strictEqual(error.reason, "template_value_missing")
      assert.include(error.message, '"a"')
      assert.deepStrictEqual(error.details, { fields: ["a", "b", "c"] })
      assert.strictEqual(err(Template.render("https://x.com/{{toString}}", {})).reason, "template_value_missing")
    })

    it("refuses lone surrogates instead of throwing", () => {
      assert.strictEqual(err(Template.render("https://x.com/{{a}}", { a: "\uD800" })).reason, "template_value_invalid")
    })

    it("property: path, query and fragment values round-trip and never change the URL structure", () => {
      const t = "https://example.com/a/{{p}}/b?q={{q}}&r=1#{{f}}"
      fc.assert(
        fc.property(anyText, anyText, anyText, (p, q, f) => {
          const result = Template.render(t, { p, q, f })
          if (p === "." || p === "..") {
            assert.strictEqual(err(result).reason, "template_value_invalid")
            return
          }
          const u = url(ok(result))
          assert.strictEqual(u.origin, "https://example.com")
          const segments = u.pathname.split("/")
          assert.strictEqual(segments.length, 4)
          assert.strictEqual(segments[1], "a")
          assert.strictEqual(decodeURIComponent(segments[2] ?? ""), p)
          assert.strictEqual(segments[3], "b")
          assert.deepStrictEqual([...u.searchParams.keys()], ["q", "r"])
          assert.strictEqual(u.searchParams.get("q"), q)
          assert.strictEqual(decodeURIComponent(u.hash.slice(1)), f)
        }),
        { numRuns: 500 }
      )
    })

    it("property: a valid hostname in the host gives that hostname, lowercased", () => {
      fc.assert(
        fc.property(hostname, fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }), (host, port) => {
          const domain = port === undefined ? host : `${host}:${port}`
          const result = Template.render("https://{{domain}}/p?x=1", { domain })
          if (Result.isFailure(result) && isPunycode(host)) return // the URL parser checks punycode labels
          const u = url(ok(result))
          assert.strictEqual(u.hostname, host.toLowerCase())
          assert.strictEqual(u.port, port === undefined || port === 443 ? "" : String(port))
          assert.strictEqual(u.pathname, "/p")
        }),
        { numRuns: 500 }
      )
    })

    it("property: IPv4 and bracketed IPv6 addresses are kept", () => {
      fc.assert(
        fc.property(fc.ipV4(), fc.ipV6(), (v4, v6) => {
          assert.strictEqual(url(ok(Template.render("http://{{h}}/", { h: v4 }))).hostname, v4)
          const expected = url(`http://[${v6}]/`).hostname
          assert.strictEqual(url(ok(Template.render("http://{{h}}/", { h: `[${v6}]` }))).hostname, expected)
        })
      )
    })

    it("property: a host value with a character outside host syntax is template_value_invalid", () => {
      const bad = fc.constantFrom(...Array.from("/?#@ \\%_\t\n!$&'()*+,;=<>\"{}|^`~é😀\u0000\u00a0"))
      fc.assert(
        fc.property(fc.string(), bad, fc.string(), (before, char, after) => {
          const domain = `${before}${char}${after}`
          const error = err(Template.render("https://{{domain}}/x", { domain }))
          assert.strictEqual(error.reason, "template_value_invalid")
          assert.include(error.message, `"${HOST_RULE_FIELD}"`)
        }),
        { numRuns: 500 }
      )
    })

    it("property: no host value, however odd, changes anything but the host", () => {
      fc.assert(
        fc.property(anyText, (domain) => {
          const result = Template.render("https://{{domain}}/fixed/path?x=1#top", { domain })
          if (Result.isFailure(result)) {
            assert.strictEqual(result.failure.reason, "template_value_invalid")
            return
          }
          const u = url(result.success)
          assert.strictEqual(u.username, "")
          assert.strictEqual(u.password, "")
          assert.strictEqual(u.pathname, "/fixed/path")
          assert.strictEqual(u.search, "?x=1")
          assert.strictEqual(u.hash, "#top")
          if (!domain.startsWith("[")) assert.strictEqual(u.hostname, domain.replace(/:\d+$/, "").toLowerCase())
        }),
        { numRuns: 1000 }
      )
    })

    const name = fc.constantFrom("a", "b", "c", "domain", "version", "team")
    const piece = (position: "host" | "other") =>
      fc.oneof(
        name.map((n) => `{{${n}}}`),
        position === "host" ? fc.constantFrom("api", "example", "x1") : fc.constantFrom("api", "v1", "x-y", "~z")
      )
    /** URL templates: a host, path segments, query parameters and a fragment, each literal or a placeholder. */
    const urlTemplate = fc
      .record({
        scheme: fc.constantFrom("http", "https", "HTTPS"),
        host: fc.array(piece("host"), { minLength: 1, maxLength: 3 }),
        path: fc.array(fc.array(piece("other"), { minLength: 1, maxLength: 2 }), { maxLength: 4 }),
        query: fc.array(fc.tuple(fc.constantFrom("k", "team", "q"), piece("other")), { maxLength: 3 }),
        fragment: fc.option(piece("other"), { nil: undefined })
      })
      .map(({ fragment, host, path, query, scheme }) => {
        const origin = `${scheme}://${host.join(".")}`
        const pathname = path.map((segment) => `/${segment.join("")}`).join("")
        const search = query.length === 0 ? "" : `?${query.map(([k, v]) => `${k}=${v}`).join("&")}`
        const hash = fragment === undefined ? "" : `#${fragment}`
        return origin + pathname + search + hash
      })

    it("property: render requires exactly fieldNames, and never renders an empty value", () => {
      fc.assert(
        fc.property(urlTemplate, fc.integer({ min: 0, max: 10 }), fc.constantFrom(undefined, ""), (t, pick, blank) => {
          const names = Template.fieldNames(t)
          assert.deepStrictEqual(
            names,
            ok(Template.parse(t))
              .placeholders.map((p) => p.name)
              .filter((n, i, all) => all.indexOf(n) === i)
          )
          const values = Object.fromEntries(names.map((n) => [n, `v${n}`]))
          const rendered = ok(Template.render(t, values))
          assert.notInclude(rendered, "{{")
          const removed = names[pick % Math.max(names.length, 1)]
          if (removed === undefined) return
          const error = err(Template.render(t, { ...values, [removed]: blank }))
          assert.strictEqual(error.reason, "template_value_missing")
          assert.deepStrictEqual(error.details, { fields: [removed] })
        }),
        { numRuns: 500 }
      )
    })

    it("property: the number of path segments is the template's", () => {
      fc.assert(
        fc.property(urlTemplate, anyText, (t, value) => {
          const names = Template.fieldNames(t)
          const parsed = ok(Template.parse(t))
          const hostNames = new Set(parsed.placeholders.filter((p) => p.position === "host").map((p) => p.name))
          const values = Object.fromEntries(names.map((n) => [n, hostNames.has(n) ? "h" : value]))
          const result = Template.render(t, values)
          if (Result.isFailure(result)) {
            // only a value that makes a whole segment "." or ".." is refused
            assert.strictEqual(result.failure.reason, "template_value_invalid")
            assert.isTrue(value === "." || value === "..")
            return
          }
          const expected = url(ok(Template.render(t, Object.fromEntries(names.map((n) => [n, "h"])))))
          assert.strictEqual(url(result.success).pathname.split("/").length, expected.pathname.split("/").length)
          assert.strictEqual(url(result.success).host, expected.host)
        }),
        { numRuns: 500 }
      )
    })
  })

  describe("renderString", () => {
    it("substitutes plainly, without encoding", () => {
      assert.strictEqual(ok(Template.renderString("Bearer {{ token }}", { token: "a/b?c" })), "Bearer a/b?c")
      assert.strictEqual(ok(Template.renderString("{{user}}:{{pass}}", { user: "u", pass: "p w" })), "u:p w")
      assert.strictEqual(ok(Template.renderString("plain {json}", {})), "plain {json}")
    })

    it("refuses missing and empty values and malformed templates", () => {
      assert.strictEqual(err(Template.renderString("{{token}}", {})).reason, "template_value_missing")
      assert.strictEqual(err(Template.renderString("{{token}}", { token: "" })).reason, "template_value_missing")
      assert.strictEqual(err(Template.renderString("{{token", { token: "x" })).reason, "template_invalid")
      assert.strictEqual(err(Template.parseString("a }} b")).reason, "template_invalid")
      assert.deepStrictEqual(ok(Template.parseString("{{a}}{{b}}{{a}}")), ["a", "b"])
    })

    it("property: substituted values appear verbatim and render requires exactly fieldNames", () => {
      const name = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,5}$/)
      const literal = fc.string().filter((s) => !s.includes("{") && !s.includes("}"))
      fc.assert(
        fc.property(
          fc.array(fc.tuple(literal, name), { maxLength: 4 }),
          literal,
          fc.string({ minLength: 1 }),
          (pieces, tail, value) => {
            const t = pieces.map(([text, n]) => `${text}{{${n}}}`).join("") + tail
            const names = Template.fieldNames(t)
            const values = Object.fromEntries(names.map((n) => [n, value]))
            assert.strictEqual(
              ok(Template.renderString(t, values)),
              pieces.map(([text]) => `${text}${value}`).join("") + tail
            )
            for (const n of names) {
              const error = err(Template.renderString(t, { ...values, [n]: "" }))
              assert.deepStrictEqual(error.details, { fields: [n] })
            }
          }
        )
      )
    })
  })
})
