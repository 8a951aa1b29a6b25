/**
 * The cassette format and its rules, without servers: scrubbing every form a secret may take, bodies kept as JSON,
 * text or base64 with a digest that ignores JSON key order, query matching without secret parameters, file names
 * that stay inside the directory, a recorder's files read back, and the player's order (identical requests get
 * their answers in recorded order, then the last again) and its `cassette_miss`.
 */
import { assert, describe, it } from "@effect/vitest"
import { UpstreamError, ValidationFailed } from "@switchboard/core/Errors"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Cassette from "../../src/cassette/Cassette.ts"
import * as Player from "../../src/cassette/Player.ts"
import * as Recorder from "../../src/cassette/Recorder.ts"

const SECRET = 'tok"en/with?chars&=1'
const scrub = Cassette.scrubber(Cassette.formsOf([`Bearer ${SECRET}`, "X"]))

const tmp = () => Fs.mkdtempSync(Path.join(Os.tmpdir(), "sb-cassette-unit-"))

describe("scrubbing", () => {
  it("blanks the whole value, the token after the scheme, its URL-encoded and JSON-escaped forms", () => {
    assert.strictEqual(scrub(`h: Bearer ${SECRET}`), "h: [REDACTED]")
    assert.strictEqual(scrub(`echo ${SECRET}!`), "echo [REDACTED]!")
    assert.strictEqual(scrub(`q=${encodeURIComponent(SECRET)}`), "q=[REDACTED]")
    assert.strictEqual(scrub(JSON.stringify({ t: SECRET })), '{"t":"[REDACTED]"}')
  })

  it("leaves values too short to be secrets alone", () => {
    assert.strictEqual(scrub("X marks the spot"), "X marks the spot")
  })

  it("scrubs keys and values inside JSON", () => {
    assert.deepStrictEqual(Cassette.scrubJson({ [SECRET]: [1, `a ${SECRET}`], n: null }, scrub), {
      "[REDACTED]": [1, "a [REDACTED]"],
      n: null
    })
  })
})

describe("bodies", () => {
  const encode = (text: string) => new TextEncoder().encode(text)

  it("match JSON whatever its key order and whitespace", () => {
    const a = Cassette.bodyOf(encode('{"a":1,"b":[1,{"c":2,"d":3}]}'), "application/json", scrub)
    const b = Cassette.bodyOf(encode('{ "b": [1, {"d":3, "c":2}], "a": 1 }'), "application/json", scrub)
    assert.strictEqual(a.sha256, b.sha256)
    assert.deepStrictEqual(a.json, { a: 1, b: [1, { c: 2, d: 3 }] })
    // kept as text when writing the JSON back would not give the same bytes (replay sends these)
    assert.strictEqual(b.json, undefined)
    assert.strictEqual(b.text, '{ "b": [1, {"d":3, "c":2}], "a": 1 }')
  })

  it("keep text as text and binary as base64, scrubbed of secrets either way", () => {
    const text = Cassette.bodyOf(encode(`token=${SECRET}`), "text/plain", scrub)
    assert.strictEqual(text.text, "token=[REDACTED]")
    const bytes = new Uint8Array([0, 255, ...encode(SECRET), 1])
    const binary = Cassette.bodyOf(bytes, "application/octet-stream", scrub)
    const decoded = Buffer.from(binary.base64 ?? "", "base64").toString("latin1")
    assert.notInclude(decoded, SECRET)
    assert.include(decoded, "[REDACTED]")
    assert.deepStrictEqual([...Cassette.bytesOf(binary)], [0, 255, ...encode("[REDACTED]"), 1])
  })

  it("over the limit keep only the digest and size", () => {
    const body = Cassette.bodyOf(encode("x".repeat(100)), "text/plain", scrub, 10)
    assert.deepStrictEqual(Object.keys(body).sort(), ["sha256", "size"])
    assert.strictEqual(body.size, 100)
  })
})

describe("matching keys", () => {
  it("ignore query order and leave out secret parameters", () => {
    const a = Cassette.matchQuery(
      [
        ["b", "2"],
        ["a", "1"],
        ["key", "live-secret"]
      ],
      new Set(["key"])
    )
    const b = Cassette.matchQuery(
      [
        ["a", "1"],
        ["key", Cassette.REDACTED],
        ["b", "2"]
      ],
      new Set()
    )
    assert.strictEqual(a, "a=1&b=2")
    assert.strictEqual(a, b)
  })

  it("compare tool arguments canonically", () => {
    assert.strictEqual(Cassette.callToolKey("add", { a: 1, b: 2 }), Cassette.callToolKey("add", { b: 2, a: 1 }))
    assert.notStrictEqual(Cassette.callToolKey("add", { a: 1 }), Cassette.callToolKey("add", { a: 2 }))
  })

  it("name files after connections without ever leaving the directory", () => {
    assert.strictEqual(Cassette.fileName("github-issues"), "github-issues.json")
    for (const name of ["../etc/passwd", "a/b", "..", ".hidden", "x\\y"]) {
      const file = Cassette.fileName(name)
      assert.notInclude(file, "/")
      assert.notInclude(file, "\\")
      assert.isFalse(file.startsWith("."), file)
    }
  })
})

describe("errors", () => {
  it("round-trip through a cassette, scrubbed", () => {
    const upstream = new UpstreamError({
      reason: "upstream_timeout",
      message: `timed out calling with ${SECRET}`,
      details: { timeout: "total" }
    })
    const back = Cassette.errorOf(Cassette.errorRecordOf(upstream, scrub))
    assert.strictEqual(back._tag, "UpstreamError")
    assert.strictEqual(back.code, "upstream_timeout")
    assert.strictEqual(back.message, "timed out calling with [REDACTED]")
    const invalid = Cassette.errorOf(Cassette.errorRecordOf(new ValidationFailed({ message: "bad" }), scrub))
    assert.strictEqual(invalid._tag, "ValidationFailed")
  })
})

describe("recorder and player", () => {
  const interaction = (n: number): Cassette.Interaction => ({
    type: "mcp.tools/call",
    name: "count",
    arguments: { step: 1 },
    result: { content: [{ type: "text", text: String(n) }] }
  })

  it.effect("read back what was written; identical requests replay in order, then the last again", () =>
    Effect.gen(function* () {
      const dir = tmp()
      const recorder = yield* Recorder.makeRecorder(dir)
      recorder.registry.add([SECRET])
      yield* recorder.append("counter", interaction(1))
      yield* recorder.append("counter", interaction(2))
      yield* recorder.append("counter", {
        type: "mcp.tools/call",
        name: "leak",
        arguments: { text: SECRET },
        result: { content: [{ type: "text", text: `got ${SECRET}` }] }
      })
      const text = Fs.readFileSync(Path.join(dir, "counter.json"), "utf8")
      assert.notInclude(text, SECRET)
      assert.notInclude(text, encodeURIComponent(SECRET))

      const player = yield* Player.makePlayer(dir)
      const key = Cassette.callToolKey("count", { step: 1 })
      const texts: Array<unknown> = []
      for (let i = 0; i < 3; i++) {
        const answer = yield* player.take("counter", key, {})
        texts.push(answer.type === "mcp.tools/call" ? answer.result : undefined)
      }
      assert.deepStrictEqual(
        texts.map((r) => (r as { content: Array<{ text: string }> }).content[0]?.text),
        ["1", "2", "2"]
      )
      const miss = yield* Effect.flip(player.take("counter", Cassette.callToolKey("count", { step: 2 }), { step: 2 }))
      assert.strictEqual(miss.code, "cassette_miss")
      assert.strictEqual(miss.status, 502)
      assert.include(miss.message, 'tools/call count {"step":2}')
      assert.deepStrictEqual((miss.details as { recorded: Array<string> }).recorded.length, 2)
      const other = yield* Effect.flip(player.take("nobody", key, {}))
      assert.include(other.message, "nobody.json does not exist")
      Fs.rmSync(dir, { recursive: true, force: true })
    })
  )

  it.effect("a directory that cannot be created is a clear error", () =>
    Effect.gen(function* () {
      const dir = tmp()
      const file = Path.join(dir, "file")
      Fs.writeFileSync(file, "")
      const error = yield* Effect.flip(Recorder.makeRecorder(Path.join(file, "sub")))
      assert.strictEqual(error.code, "cassette_unwritable")
      Fs.rmSync(dir, { recursive: true, force: true })
    })
  )
})
