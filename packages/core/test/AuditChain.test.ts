/**
 * The audit chain's rules: the canonical encoding (key order never matters), and verification finding every
 * edited, deleted, reordered and truncated record, and checking the sealed head (as the store opened it).
 */
import { assert, describe, it } from "@effect/vitest"
import * as AuditChain from "@switchboard/core/AuditChain"
import type { AuditRecord } from "@switchboard/core/AuditLog"
import { createHash } from "node:crypto"

const digest = (text: string) => createHash("sha256").update(text).digest("hex")

const record = (i: number): AuditRecord => ({
  id: `aud_${String(i).padStart(4, "0")}`,
  at: `2026-01-01T00:00:0${i % 10}.000Z`,
  org: "local",
  workspace: "default",
  actor: "me",
  action: "connector.create",
  outcome: "success",
  target: `c${i}`
})

const chain = (n: number): Array<AuditChain.Link> => {
  const out: Array<AuditChain.Link> = []
  let prev = AuditChain.genesis
  for (let i = 1; i <= n; i++) {
    const r = record(i)
    const hash = digest(AuditChain.canonical(i, prev, r))
    out.push({ seq: i, prev_hash: prev, hash, id: r.id, record: r })
    prev = hash
  }
  return out
}

const headOf = (links: ReadonlyArray<AuditChain.Link>) => {
  const last = links[links.length - 1]
  return last === undefined ? undefined : { seq: last.seq, hash: last.hash }
}

const problems = (links: ReadonlyArray<AuditChain.Link>, head = headOf(links)) =>
  AuditChain.verify("local", links, head, 0, digest).problems.map((p) => [p.problem, p.seq])

describe("AuditChain", () => {
  it("the canonical encoding ignores key order and absent keys", () => {
    const a = AuditChain.canonical(1, AuditChain.genesis, { ...record(1), tool: undefined } as unknown as AuditRecord)
    const { id, ...rest } = record(1)
    assert.strictEqual(a, AuditChain.canonical(1, AuditChain.genesis, { ...rest, id }))
  })

  it("an intact chain verifies; an empty one too", () => {
    const links = chain(5)
    const result = AuditChain.verify("local", links, headOf(links), 2, digest)
    assert.isTrue(result.ok)
    assert.strictEqual(result.records, 5)
    assert.strictEqual(result.unchained, 2)
    assert.isTrue(AuditChain.verify("local", [], undefined, 0, digest).ok)
  })

  it("finds an edited record", () => {
    const links = chain(4)
    links[1] = { ...links[1]!, record: { ...links[1]!.record!, outcome: "failure" } }
    assert.deepStrictEqual(problems(links), [["edited", 2]])
  })

  it("finds a deleted record, and a deleted tail through the head", () => {
    const links = chain(5)
    assert.deepStrictEqual(problems([...links.slice(0, 2), ...links.slice(3)], headOf(links)), [["missing", 4]])
    assert.deepStrictEqual(problems(links.slice(0, 4), headOf(links)), [["truncated", 5]])
    const headless = AuditChain.verify("local", chain(2), undefined, 0, digest)
    assert.deepStrictEqual(
      headless.problems.map((p) => p.problem),
      ["truncated"]
    )
  })

  it("finds reordered records", () => {
    const links = chain(4)
    // Rows swapped with their numbers: the links no longer follow.
    const swapped = [links[0]!, { ...links[2]!, seq: 2 }, { ...links[1]!, seq: 3 }, links[3]!]
    const found = problems(swapped)
    assert.isTrue(
      found.some(([p]) => p === "reordered"),
      JSON.stringify(found)
    )
    assert.isTrue(found.some(([p]) => p === "edited"))
  })

  describe("the sealed head", () => {
    const opened = (seq: number, hash: string, org = "local"): AuditChain.HeadSeal => ({
      _tag: "opened",
      org,
      seq,
      hash
    })
    const check = (links: ReadonlyArray<AuditChain.Link>, seal: AuditChain.HeadSeal, head = headOf(links)) => {
      const v = AuditChain.verify("local", links, head === undefined ? undefined : { ...head, seal }, 0, digest)
      return [v.ok, v.head_seal, v.problems.map((p) => [p.problem, p.seq])]
    }

    it("a seal equal to the head and the last record is verified; unsealed and unchecked heads pass with a note", () => {
      const links = chain(3)
      const last = links[2]
      assert.deepStrictEqual(check(links, opened(3, last?.hash ?? "")), [true, "verified", []])
      assert.deepStrictEqual(check(links, { _tag: "unsealed" }), [true, "unsealed", []])
      assert.deepStrictEqual(check(links, { _tag: "unchecked" }), [true, "unchecked", []])
      assert.strictEqual(AuditChain.verify("local", links, headOf(links), 0, digest).head_seal, "none")
      assert.strictEqual(
        AuditChain.sealedHeadText("local", { seq: 3, hash: "ab" }),
        '{"hash":"ab","org":"local","seq":3}'
      )
    })

    it("a seal that differs from a consistent chain and head is head_forged, or truncated when it is further", () => {
      const links = chain(3)
      // A rewritten chain: consistent hashes and plain head, but the seal holds the real last hash.
      assert.deepStrictEqual(check(links, opened(3, "f".repeat(64))), [false, "forged", [["head_forged", 3]]])
      assert.deepStrictEqual(check(links, opened(5, "f".repeat(64))), [false, "forged", [["truncated", 5]]])
      assert.deepStrictEqual(check(links, opened(3, links[2]?.hash ?? "", "other")), [
        false,
        "forged",
        [["head_forged", 3]]
      ])
      assert.deepStrictEqual(check(links, { _tag: "unopenable", message: "bad" }), [
        false,
        "forged",
        [["head_forged", 3]]
      ])
    })
  })
})
