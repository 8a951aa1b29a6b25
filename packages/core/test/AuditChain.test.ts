/**
 * The audit chain's rules: the canonical encoding (key order never matters), and verification finding every
 * edited, deleted, reordered and truncated record.
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
})
