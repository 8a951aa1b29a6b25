import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { escape, html, raw } from "../../src/web/Html.ts"

describe("Html", () => {
  it("escapes every interpolated string, in text and in attributes", () => {
    const value = `<script>alert("x")</script>' onload='x' \``
    const out = html`<p title="${value}">${value}</p>`.value
    assert.notInclude(out, "<script>")
    assert.strictEqual(out.match(/"/gu)?.length, 2, "only the attribute's own quotes")
    assert.include(out, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onload=&#39;x&#39; &#96;")
  })

  it("keeps nested Html and trusted raw markup, joins arrays and drops null, undefined and booleans", () => {
    const items = ["a<b", "c"].map((s) => html`<li>${s}</li>`)
    assert.strictEqual(
      html`<ul>${items}</ul>${null}${undefined}${false}${true}${raw("<hr>")}${3}`.value,
      "<ul><li>a&lt;b</li><li>c</li></ul><hr>3"
    )
  })

  it("escaped text never contains markup characters and decodes back to the input", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (s) => {
        const out = escape(s)
        assert.notMatch(out, /[<>"'`]/u)
        const decoded = out
          .replaceAll("&lt;", "<")
          .replaceAll("&gt;", ">")
          .replaceAll("&quot;", '"')
          .replaceAll("&#39;", "'")
          .replaceAll("&#96;", "`")
          .replaceAll("&amp;", "&")
        assert.strictEqual(decoded, s)
      })
    )
  })
})
