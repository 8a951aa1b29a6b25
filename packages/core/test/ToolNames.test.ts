import { assert, describe, it } from "@effect/vitest"
import * as Option from "effect/Option"
import * as fc from "fast-check"
import * as ToolNames from "../src/ToolNames.ts"

const ref = (connectionId: string, connectionName: string, tool: string): ToolNames.ToolRef => ({
  connectionId,
  connectionName,
  tool
})

const mapping = (names: ToolNames.ToolNames<ToolNames.ToolRef>) =>
  Object.fromEntries(names.entries.map((e) => [`${e.ref.connectionId}/${e.ref.tool}`, e.name]))

/** Connection names as the domain allows them, and tool names as upstreams send them (anything, mostly short). */
const connectionName = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,40}$/u)
const toolName = fc.oneof(
  fc.stringMatching(/^[a-z_]{1,12}$/u),
  fc.string({ minLength: 1, maxLength: 80 }),
  fc.constantFrom("echo", "send message", "a.b", "ümlaut", "x".repeat(100), "get__sum")
)
const refs = fc.array(
  fc.record({
    connectionId: fc.constantFrom("conn_a", "conn_b", "conn_c", "conn_d"),
    connectionName: fc.oneof(connectionName, fc.constantFrom("my conn", "my.conn", "my_conn")),
    tool: toolName
  }),
  { maxLength: 30 }
)

describe("ToolNames", () => {
  it("joins connection and tool with __ and keeps valid names as they are", () => {
    const names = ToolNames.assign([ref("conn_1", "github", "create_issue"), ref("conn_2", "Prod-Slack", "send")])
    assert.deepStrictEqual(
      names.entries.map((e) => e.name),
      ["github__create_issue", "Prod-Slack__send"]
    )
    assert.deepStrictEqual(names.resolve("github__create_issue"), Option.some(ref("conn_1", "github", "create_issue")))
    assert.deepStrictEqual(names.nameOf("conn_2", "send"), Option.some("Prod-Slack__send"))
    assert.isTrue(Option.isNone(names.resolve("github__nope")))
  })

  it("sanitises each run of other characters to one underscore", () => {
    assert.strictEqual(ToolNames.sanitize("Production Slack"), "Production_Slack")
    assert.strictEqual(ToolNames.sanitize("a.b..c"), "a_b_c")
    assert.strictEqual(ToolNames.sanitize("send message/now"), "send_message_now")
    assert.strictEqual(ToolNames.sanitize("café"), "caf_")
    assert.strictEqual(ToolNames.sanitize(""), "_")
    const names = ToolNames.assign([ref("conn_1", "My API v2.1", "get items")])
    assert.strictEqual(names.entries[0]?.name, "My_API_v2_1__get_items")
  })

  it("the hash is FNV-1a over UTF-8, 8 hex digits", () => {
    assert.strictEqual(ToolNames.shortHash(""), "811c9dc5")
    assert.strictEqual(ToolNames.shortHash("a"), "e40c292c")
    assert.strictEqual(ToolNames.shortHash("foobar"), "bf9cf968")
  })

  it("suffixes every member of a collision with a hash of connection id and original name", () => {
    // "my conn" and "my.conn" both sanitise to my_conn; the two upstreams even share the tool name
    const a = ref("conn_a", "my conn", "search")
    const b = ref("conn_b", "my.conn", "search")
    const c = ref("conn_c", "other", "search")
    const names = ToolNames.assign([a, b, c])
    const [na, nb, nc] = names.entries.map((e) => e.name)
    assert.strictEqual(na, `my_conn__search_${ToolNames.shortHash("conn_a\u0000search")}`)
    assert.strictEqual(nb, `my_conn__search_${ToolNames.shortHash("conn_b\u0000search")}`)
    assert.strictEqual(nc, "other__search", "a tool without a collision keeps its plain name")
    assert.deepStrictEqual(names.resolve(na ?? ""), Option.some(a))
    assert.deepStrictEqual(names.resolve(nb ?? ""), Option.some(b))
  })

  it("keeps two tools whose names differ only in invalid characters apart", () => {
    const names = ToolNames.assign([ref("conn_a", "x", "a.b"), ref("conn_a", "x", "a b"), ref("conn_a", "x", "a_b")])
    assert.strictEqual(new Set(names.entries.map((e) => e.name)).size, 3)
    for (const e of names.entries) assert.match(e.name, /^x__a_b_[0-9a-f]{8}$/u)
  })

  it("shortens names over 64 characters, keeping them apart by the hash", () => {
    const long = "a_really_long_tool_name_that_goes_on_and_on_and_on_for_quite_a_while"
    const names = ToolNames.assign([ref("conn_a", "github", long), ref("conn_a", "github", `${long}_2`)])
    for (const e of names.entries) {
      assert.strictEqual(e.name.length, 64)
      assert.isTrue(ToolNames.isValid(e.name))
      assert.isTrue(e.name.startsWith("github__a_really_long"))
    }
    assert.notStrictEqual(names.entries[0]?.name, names.entries[1]?.name)
  })

  it("gives way to reserved names", () => {
    const names = ToolNames.assign([ref("conn_s", "switchboard", "list_connections")], {
      reserved: ["switchboard__list_connections"]
    })
    assert.match(names.entries[0]?.name ?? "", /^switchboard__list_connections_[0-9a-f]{8}$/u)
  })

  it("numbers the rare names that collide even after hashing", () => {
    const victim = ref("conn_a", "x", "t")
    const hashed = ToolNames.hashedName(ref("conn_b", "x", "t"))
    // conn_c's tool is literally named like conn_b's hashed name would be
    const literal = ref("conn_c", "x", hashed.slice("x__".length))
    const names = ToolNames.assign([victim, ref("conn_b", "x", "t"), literal])
    const all = names.entries.map((e) => e.name)
    assert.strictEqual(new Set(all).size, 3)
    for (const e of names.entries) assert.deepStrictEqual(names.resolve(e.name), Option.some(e.ref))
  })

  it("drops a repeated ref", () => {
    const names = ToolNames.assign([ref("conn_a", "x", "t"), ref("conn_a", "x", "t")])
    assert.deepStrictEqual(
      names.entries.map((e) => e.name),
      ["x__t"]
    )
  })

  it("property: every name is valid and unique, and maps back to its ref", () => {
    fc.assert(
      fc.property(refs, fc.array(fc.stringMatching(/^[a-z_]{1,20}$/u), { maxLength: 3 }), (rs, reserved) => {
        const names = ToolNames.assign(rs, { reserved })
        const all = names.entries.map((e) => e.name)
        assert.strictEqual(new Set(all).size, all.length)
        for (const e of names.entries) {
          assert.isTrue(ToolNames.isValid(e.name), e.name)
          assert.isFalse(reserved.includes(e.name))
          assert.deepStrictEqual(names.resolve(e.name), Option.some(e.ref))
          assert.deepStrictEqual(names.nameOf(e.ref.connectionId, e.ref.tool), Option.some(e.name))
        }
      })
    )
  })

  it("property: names depend on the set of tools, not on their order", () => {
    fc.assert(
      fc.property(
        refs.chain((rs) => fc.tuple(fc.constant(rs), fc.shuffledSubarray(rs, { minLength: rs.length }))),
        ([rs, shuffled]) => {
          // the same ref twice keeps its first spelling of the connection name: compare distinct refs only
          const distinct = [...new Map(rs.map((r) => [`${r.connectionId}\u0000${r.tool}`, r])).values()]
          const reordered = shuffled.filter((r) => distinct.includes(r))
          assert.deepStrictEqual(mapping(ToolNames.assign(reordered)), mapping(ToolNames.assign(distinct)))
        }
      )
    )
  })

  it("property: a tool without a collision keeps the plain name when it is valid", () => {
    fc.assert(
      fc.property(connectionName, fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/u), (conn, tool) => {
        const names = ToolNames.assign([ref("conn_a", conn, tool), ref("conn_b", "zz-other", "zz")])
        const plain = `${ToolNames.sanitize(conn)}__${tool}`
        if (plain.length <= 64 && plain !== "zz-other__zz") assert.strictEqual(names.entries[0]?.name, plain)
      })
    )
  })
})
