/**
 * The SSRF guard's pure parts: how odd hosts are read, how every address range is classified, and what a
 * refusal says. No network here; the end-to-end refusal table (nothing connected) is in SsrfTable.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Result from "effect/Result"
import * as Ssrf from "../../src/http/Ssrf.ts"

const hostOf = (url: string) => {
  const parsed = Ssrf.parseTarget(url)
  assert.isTrue(Result.isSuccess(parsed), `expected ${url} to parse`)
  return Result.isSuccess(parsed) ? parsed.success.hostname : ""
}

describe("Ssrf.parseTarget", () => {
  it("reads odd IPv4 forms as the address they mean", () => {
    const forms: ReadonlyArray<readonly [string, string]> = [
      ["http://2130706433/", "127.0.0.1"],
      ["http://0177.0.0.1/", "127.0.0.1"],
      ["http://0x7f.1/", "127.0.0.1"],
      ["http://127.1/", "127.0.0.1"],
      ["http://0x7f000001/", "127.0.0.1"],
      ["http://017700000001/", "127.0.0.1"],
      ["http://0x7f.0x0.0x0.0x1/", "127.0.0.1"],
      ["http://127.000.000.001/", "127.0.0.1"],
      ["http://127.0.0.1./", "127.0.0.1"],
      ["http://0/", "0.0.0.0"],
      ["http://①②⑦.0.0.1/", "127.0.0.1"],
      ["http://１２７.０.０.１/", "127.0.0.1"],
      ["http://%31%32%37.0.0.1/", "127.0.0.1"],
      ["http://[::ffff:127.0.0.1]/", "::ffff:7f00:1"],
      ["http://[0000::1]/", "::1"],
      ["http://ⓛocalhost/", "localhost"],
      ["http://LOCALHOST./", "localhost"],
      ["http://127.0.0.1\\@example.com/", "127.0.0.1"],
      ["http://127.0.0.1#@example.com/", "127.0.0.1"]
    ]
    for (const [url, host] of forms) assert.strictEqual(hostOf(url), host, url)
    const literal = Ssrf.parseTarget("http://0x7f.1:8080/x")
    assert.isTrue(Result.isSuccess(literal))
    if (Result.isSuccess(literal)) {
      assert.deepStrictEqual(literal.success.literal, { address: "127.0.0.1", family: 4 })
      assert.strictEqual(literal.success.port, 8080)
    }
  })

  it("refuses other schemes, user info and invalid URLs without echoing them", () => {
    const refusals: ReadonlyArray<readonly [string, string]> = [
      ["file:///etc/passwd", "scheme"],
      ["gopher://127.0.0.1:70/_x", "scheme"],
      ["ftp://example.com/", "scheme"],
      ["http://a@127.0.0.1/", "userinfo"],
      ["http://user:s3cr3t-pw@example.com/", "userinfo"],
      ["http://example.com@127.0.0.1/", "userinfo"],
      ["http://4294967296/", "invalid_url"],
      ["http://[fe80::1%25eth0]/", "invalid_url"],
      ["not a url s3cr3t-pw", "invalid_url"]
    ]
    for (const [url, rule] of refusals) {
      const parsed = Ssrf.parseTarget(url)
      assert.isTrue(Result.isFailure(parsed), url)
      if (Result.isFailure(parsed)) {
        assert.strictEqual(parsed.failure.reason, "destination_refused")
        assert.strictEqual((parsed.failure.details as { rule: string }).rule, rule, url)
        assert.notInclude(parsed.failure.message, "s3cr3t")
      }
    }
  })
})

describe("Ssrf.classify", () => {
  const table: ReadonlyArray<readonly [string, string | undefined]> = [
    ["127.0.0.1", "loopback"],
    ["127.255.0.9", "loopback"],
    ["10.0.0.5", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["100.64.0.1", "cgnat"],
    ["100.127.255.254", "cgnat"],
    ["169.254.1.1", "link_local"],
    ["169.254.169.254", "metadata"],
    ["169.254.170.2", "metadata"],
    ["100.100.100.200", "metadata"],
    ["0.0.0.0", "this_network"],
    ["0.1.2.3", "this_network"],
    ["192.0.0.8", "ietf"],
    ["192.0.2.1", "documentation"],
    ["198.51.100.7", "documentation"],
    ["203.0.113.9", "documentation"],
    ["198.18.0.1", "benchmarking"],
    ["198.19.255.1", "benchmarking"],
    ["192.88.99.1", "6to4_relay"],
    ["224.0.0.1", "multicast"],
    ["239.255.255.250", "multicast"],
    ["255.255.255.255", "broadcast"],
    ["240.0.0.1", "reserved"],
    ["::", "unspecified"],
    ["::1", "loopback"],
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:a9fe:a9fe", "metadata"],
    ["::ffff:0:7f00:1", "loopback"],
    ["::7f00:1", "ipv4_compatible"],
    ["::8.8.8.8", "ipv4_compatible"],
    ["64:ff9b::7f00:1", "loopback"],
    ["64:ff9b::10.0.0.1", "private"],
    ["64:ff9b:1::1", "nat64_local"],
    ["2002:7f00:1::", "loopback"],
    ["2002:a9fe:a9fe::1", "metadata"],
    ["2001:0:4136:e378:8000:63bf:3fff:fdd2", "teredo"],
    ["2001:db8::1", "documentation"],
    ["3fff::1", "documentation"],
    ["2001:2::1", "ietf"],
    ["100::1", "discard"],
    ["fc00::1", "unique_local"],
    ["fd12:3456::1", "unique_local"],
    ["fd00:ec2::254", "metadata"],
    ["fe80::1", "link_local"],
    ["fe80::1%eth0", "link_local"],
    ["fec0::1", "site_local"],
    ["ff02::1", "multicast"],
    ["4000::1", "reserved"],
    ["8.8.8.8", undefined],
    ["93.184.215.14", undefined],
    ["172.32.0.1", undefined],
    ["100.128.0.1", undefined],
    ["2606:4700::1111", undefined],
    ["64:ff9b::808:808", undefined],
    ["2002:808:808::1", undefined],
    ["::ffff:8.8.8.8", undefined]
  ]
  for (const [address, rule] of table) {
    it(`${address} → ${rule ?? "public"}`, () => {
      assert.strictEqual(Ssrf.classify(address)?.rule.id, rule)
    })
  }

  it("reports the IPv4 address an IPv6 form carries", () => {
    assert.deepStrictEqual(Ssrf.classify("::ffff:7f00:1")?.embedded, {
      address: "127.0.0.1",
      form: "IPv4-mapped IPv6"
    })
    assert.deepStrictEqual(Ssrf.classify("2002:a9fe:a9fe::")?.embedded, {
      address: "169.254.169.254",
      form: "6to4"
    })
    assert.deepStrictEqual(Ssrf.classify("64:ff9b::a00:5")?.embedded, { address: "10.0.0.5", form: "NAT64" })
  })
})

describe("Ssrf.checkAddress", () => {
  it("names the address, the rule and the host, and says how to allow what may be allowed", () => {
    const refused = Ssrf.checkAddress({ address: "10.0.0.5", family: 4 }, "internal.example", false)
    assert.isTrue(Result.isFailure(refused))
    if (Result.isFailure(refused)) {
      assert.strictEqual(refused.failure.code, "destination_refused")
      assert.strictEqual(refused.failure.status, 403)
      assert.strictEqual(
        refused.failure.message,
        "refused 10.0.0.5 (private network, RFC 1918) for host internal.example: set allow_private_network on the connection to allow it"
      )
    }
    assert.isTrue(Result.isSuccess(Ssrf.checkAddress({ address: "10.0.0.5", family: 4 }, "internal.example", true)))
  })

  it("keeps metadata, unspecified, multicast and reserved ranges refused with allow_private_network", () => {
    for (const address of ["169.254.169.254", "fd00:ec2::254", "::ffff:a9fe:a9fe", "0.0.0.0", "::", "224.0.0.1"]) {
      const r = Ssrf.checkAddress({ address, family: address.includes(":") ? 6 : 4 }, "h", true)
      assert.isTrue(Result.isFailure(r), address)
      if (Result.isFailure(r)) assert.include(r.failure.message, "never allowed")
    }
    const mapped = Ssrf.checkAddress({ address: "::ffff:a9fe:a9fe", family: 6 }, "h", true)
    if (Result.isFailure(mapped)) {
      assert.strictEqual(
        mapped.failure.message,
        "refused ::ffff:a9fe:a9fe (IPv4-mapped IPv6 of 169.254.169.254: cloud metadata service) for host h: this range is never allowed"
      )
    }
  })

  it("allows loopback, private, CGNAT, link-local and unique-local targets with allow_private_network", () => {
    for (const address of ["127.0.0.1", "::1", "192.168.0.10", "100.64.1.1", "169.254.10.10", "fd12::1", "fe80::1"]) {
      const family = address.includes(":") ? 6 : 4
      assert.isTrue(Result.isSuccess(Ssrf.checkAddress({ address, family }, "h", true)), address)
      assert.isTrue(Result.isFailure(Ssrf.checkAddress({ address, family }, "h", false)), address)
    }
  })
})
