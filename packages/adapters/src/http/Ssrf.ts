/**
 * The SSRF guard shared by every outgoing connection (the HTTP proxy, MCP over HTTP, OAuth endpoints, probes):
 * parse a URL (http and https only, no user info), take its host as the WHATWG URL parser means it (so
 * `2130706433`, `0177.0.0.1`, `0x7f.1` and `127.1` are all 127.0.0.1), resolve it once, and classify every
 * address with `node:net` `BlockList`s. Loopback, private, CGNAT, link-local and unique-local targets are
 * refused unless the connection (or the daemon) explicitly allows a private network; cloud metadata endpoints,
 * unspecified, multicast, broadcast, documentation, benchmarking and other reserved ranges are refused always.
 * IPv6 forms that carry an IPv4 address (mapped, SIIT-translated, NAT64, 6to4) are judged by the IPv4 address
 * they carry. Refusals name the resolved address and the rule, never the URL (it may carry secrets).
 */
import { type Address, Resolver } from "@switchboard/core/Resolver"
import { UpstreamError } from "@switchboard/core/Errors"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import { BlockList, isIP } from "node:net"

/** The port `resolve` looks hosts up through, re-exported for callers that provide it. */
export { Resolver }

/** A classification rule: what a range is and whether `allow_private_network` lifts its refusal. */
export interface Rule {
  /** Stable identifier, for details and tests: `loopback`, `private`, `metadata`, … */
  readonly id: string
  /** What the range is, with its reference: "private network, RFC 1918". */
  readonly label: string
  /** True when `allow_private_network` allows it (the local-first exception). */
  readonly privateNetwork: boolean
}

/** Why an address is special: the rule, and the IPv4 address it carries when that decided. */
export interface Finding {
  readonly rule: Rule
  readonly embedded?: { readonly address: string; readonly form: string } | undefined
}

interface Range {
  readonly rule: Rule
  readonly list: BlockList
}

const range = (
  id: string,
  label: string,
  privateNetwork: boolean,
  family: "ipv4" | "ipv6",
  cidrs: ReadonlyArray<string>
): Range => {
  const list = new BlockList()
  for (const cidr of cidrs) {
    const [network = "", prefix = ""] = cidr.split("/")
    list.addSubnet(network, Number(prefix), family)
  }
  return { rule: { id, label, privateNetwork }, list }
}

/** IPv4 rules, most specific first (metadata endpoints sit inside ranges that may otherwise be allowed). */
const ipv4Ranges: ReadonlyArray<Range> = [
  range("metadata", "cloud metadata service", false, "ipv4", [
    "169.254.169.254/32", // AWS, GCP, Azure, Oracle, OpenStack
    "169.254.170.2/32", // AWS ECS task metadata
    "169.254.170.23/32", // AWS EKS pod identity
    "100.100.100.200/32" // Alibaba Cloud
  ]),
  range("this_network", "unspecified / this network, RFC 791", false, "ipv4", ["0.0.0.0/8"]),
  range("loopback", "loopback, RFC 1122", true, "ipv4", ["127.0.0.0/8"]),
  range("private", "private network, RFC 1918", true, "ipv4", ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]),
  range("cgnat", "shared address space (carrier-grade NAT), RFC 6598", true, "ipv4", ["100.64.0.0/10"]),
  range("link_local", "link-local, RFC 3927", true, "ipv4", ["169.254.0.0/16"]),
  range("ietf", "IETF protocol assignments, RFC 6890", false, "ipv4", ["192.0.0.0/24"]),
  range("documentation", "documentation, RFC 5737", false, "ipv4", [
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24"
  ]),
  range("benchmarking", "benchmarking, RFC 2544", false, "ipv4", ["198.18.0.0/15"]),
  range("6to4_relay", "6to4 relay anycast, RFC 7526", false, "ipv4", ["192.88.99.0/24"]),
  range("multicast", "multicast, RFC 5771", false, "ipv4", ["224.0.0.0/4"]),
  range("broadcast", "limited broadcast, RFC 919", false, "ipv4", ["255.255.255.255/32"]),
  range("reserved", "reserved, RFC 1112", false, "ipv4", ["240.0.0.0/4"])
]

/** IPv6 rules, most specific first. Forms that carry IPv4 are handled before these (see `classify`). */
const ipv6Ranges: ReadonlyArray<Range> = [
  range("metadata", "cloud metadata service", false, "ipv6", ["fd00:ec2::254/128", "fd00:ec2::23/128"]),
  range("unspecified", "unspecified, RFC 4291", false, "ipv6", ["::/128"]),
  range("loopback", "loopback, RFC 4291", true, "ipv6", ["::1/128"]),
  range("ipv4_compatible", "IPv4-compatible IPv6 (deprecated), RFC 4291", false, "ipv6", ["::/96"]),
  range("nat64_local", "local-use IPv4/IPv6 translation, RFC 8215", false, "ipv6", ["64:ff9b:1::/48"]),
  range("discard", "discard-only, RFC 6666", false, "ipv6", ["100::/64"]),
  range("teredo", "Teredo tunnelling, RFC 4380", false, "ipv6", ["2001::/32"]),
  range("documentation", "documentation, RFC 3849 and RFC 9637", false, "ipv6", ["2001:db8::/32", "3fff::/20"]),
  range("ietf", "IETF protocol assignments, RFC 6890", false, "ipv6", ["2001::/23"]),
  range("unique_local", "unique local address, RFC 4193", true, "ipv6", ["fc00::/7"]),
  range("link_local", "link-local, RFC 4291", true, "ipv6", ["fe80::/10"]),
  range("site_local", "site-local (deprecated), RFC 3879", true, "ipv6", ["fec0::/10"]),
  range("multicast", "multicast, RFC 4291", false, "ipv6", ["ff00::/8"])
]

const globalUnicast = range("global", "global unicast", false, "ipv6", ["2000::/3"])
const notGlobal: Rule = { id: "reserved", label: "reserved, outside global unicast 2000::/3", privateNetwork: false }

/** The eight 16-bit groups of a valid IPv6 address (a trailing dotted quad is two groups). */
const hextets = (address: string): ReadonlyArray<number> => {
  let text = address
  const tail: Array<number> = []
  const lastColon = text.lastIndexOf(":")
  if (text.slice(lastColon + 1).includes(".")) {
    const octets = text
      .slice(lastColon + 1)
      .split(".")
      .map(Number)
    tail.push(((octets[0] ?? 0) << 8) | (octets[1] ?? 0), ((octets[2] ?? 0) << 8) | (octets[3] ?? 0))
    text = `${text.slice(0, lastColon + 1)}0:0`
  }
  const parse = (part: string) => (part === "" ? [] : part.split(":").map((h) => Number.parseInt(h, 16)))
  const [head = "", rest] = text.split("::")
  const left = parse(head)
  const right = rest === undefined ? [] : parse(rest)
  const fill = rest === undefined ? [] : new Array<number>(8 - left.length - right.length).fill(0)
  const groups = [...left, ...fill, ...right]
  if (tail.length > 0) groups.splice(6, 2, ...tail)
  return groups
}

const ipv4Of = (high: number, low: number): string => `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`

/** The IPv4 address an IPv6 address carries, for the forms that route to it. */
const embeddedIPv4 = (address: string): { readonly address: string; readonly form: string } | undefined => {
  const g = hextets(address)
  const at = (i: number) => g[i] ?? 0
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0)
  if (zeros(0, 5) && at(5) === 0xffff) return { address: ipv4Of(at(6), at(7)), form: "IPv4-mapped IPv6" }
  if (zeros(0, 4) && at(4) === 0xffff && at(5) === 0) {
    return { address: ipv4Of(at(6), at(7)), form: "IPv4-translated (SIIT) IPv6" }
  }
  if (at(0) === 0x64 && at(1) === 0xff9b && zeros(2, 6)) return { address: ipv4Of(at(6), at(7)), form: "NAT64" }
  if (at(0) === 0x2002) return { address: ipv4Of(at(1), at(2)), form: "6to4" }
  return undefined
}

const firstMatch = (ranges: ReadonlyArray<Range>, address: string, family: "ipv4" | "ipv6") =>
  ranges.find((r) => r.list.check(address, family))?.rule

/**
 * Why an IP address is special, or `undefined` for an ordinary public address. Throws nothing: a string that
 * is not an IP address is reported under the rule `invalid`.
 */
export const classify = (input: string): Finding | undefined => {
  // A zone index (fe80::1%eth0) does not change which range the address is in.
  const address = input.includes("%") ? input.slice(0, input.indexOf("%")) : input
  const family = isIP(address)
  if (family === 4) {
    const rule = firstMatch(ipv4Ranges, address, "ipv4")
    return rule === undefined ? undefined : { rule }
  }
  if (family !== 6) return { rule: { id: "invalid", label: "not an IP address", privateNetwork: false } }
  const metadata = firstMatch(ipv6Ranges.slice(0, 1), address, "ipv6")
  if (metadata !== undefined) return { rule: metadata }
  const embedded = embeddedIPv4(address)
  if (embedded !== undefined) {
    const inner = classify(embedded.address)
    return inner === undefined ? undefined : { rule: inner.rule, embedded }
  }
  const rule = firstMatch(ipv6Ranges, address, "ipv6")
  if (rule !== undefined) return { rule }
  return globalUnicast.list.check(address, "ipv6") ? undefined : { rule: notGlobal }
}

// Addresses classified lately (classifying walks the range lists): a proxy calls the same few again and again.
const CLASSIFIED_MAX = 1024
const classified = new Map<string, Finding | undefined>()
const classifyKnown = (address: string): Finding | undefined => {
  const known = classified.get(address)
  if (known !== undefined || classified.has(address)) return known
  const finding = classify(address)
  if (classified.size >= CLASSIFIED_MAX) classified.clear()
  classified.set(address, finding)
  return finding
}

/** The finding that refuses an address under the given policy, or `undefined` when it may be connected to. */
export const refusal = (address: string, allowPrivateNetwork: boolean): Finding | undefined => {
  const finding = classifyKnown(address)
  if (finding === undefined) return undefined
  return allowPrivateNetwork && finding.rule.privateNetwork ? undefined : finding
}

const refused = (message: string, details: Record<string, unknown>) =>
  new UpstreamError({ reason: "destination_refused", message, details })

/** Check one resolved address of `host`; the error names the address and the rule. */
export const checkAddress = (
  address: Address,
  host: string,
  allowPrivateNetwork: boolean
): Result.Result<Address, UpstreamError> => {
  const finding = refusal(address.address, allowPrivateNetwork)
  if (finding === undefined) return Result.succeed(address)
  const { rule, embedded } = finding
  const what = embedded === undefined ? rule.label : `${embedded.form} of ${embedded.address}: ${rule.label}`
  const advice = rule.privateNetwork
    ? "set allow_private_network on the connection to allow it"
    : "this range is never allowed"
  return Result.fail(
    refused(`refused ${address.address} (${what}) for host ${host}: ${advice}`, {
      host,
      address: address.address,
      rule: rule.id,
      ...(embedded === undefined ? {} : { embedded_ipv4: embedded.address }),
      allowed_with_private_network: rule.privateNetwork
    })
  )
}

/** A URL the guard accepts, with its host as the WHATWG parser means it. */
export interface Target {
  readonly url: URL
  readonly secure: boolean
  /** The host without brackets or a trailing dot: what is resolved, and the TLS server name. */
  readonly hostname: string
  readonly port: number
  /** The address, when the host is an IP literal (no lookup happens then). */
  readonly literal: Address | undefined
}

/** A target with every resolved address checked, and the one address the connection is pinned to. */
export interface Pinned extends Target {
  readonly addresses: ReadonlyArray<Address>
  readonly address: Address
}

// A last label that is all digits or hex means the WHATWG parser read the host as IPv4; a name can't end so.
const NUMERIC_LABEL = /^(?:0x[0-9a-f]*|[0-9]+)$/iu

/** Parse and vet a URL: http(s) only, no user info, a host. Errors never echo the URL. */
export const parseTarget = (raw: string): Result.Result<Target, UpstreamError> => {
  if (!URL.canParse(raw)) return Result.fail(refused("refused an invalid URL", { rule: "invalid_url" }))
  const url = new URL(raw)
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return Result.fail(
      refused(`refused a ${url.protocol.slice(0, -1)} URL: only http and https are allowed`, {
        rule: "scheme",
        scheme: url.protocol.slice(0, -1)
      })
    )
  }
  if (url.username !== "" || url.password !== "") {
    return Result.fail(
      refused("refused a URL with user info (credentials in URLs are not allowed): use the connection's auth", {
        rule: "userinfo"
      })
    )
  }
  const bracketed = url.hostname.startsWith("[") && url.hostname.endsWith("]")
  const host = bracketed ? url.hostname.slice(1, -1) : url.hostname.replace(/\.$/u, "")
  if (host === "") return Result.fail(refused("refused a URL without a host", { rule: "invalid_url" }))
  const secure = url.protocol === "https:"
  const port = url.port === "" ? (secure ? 443 : 80) : Number(url.port)
  const family = isIP(host)
  if (family === 0 && NUMERIC_LABEL.test(host.slice(host.lastIndexOf(".") + 1))) {
    return Result.fail(refused(`refused host ${host}: a numeric name is not a valid IPv4 address`, { host }))
  }
  const literal: Address | undefined = family === 4 || family === 6 ? { address: host, family } : undefined
  return Result.succeed({ url, secure, hostname: host, port, literal })
}

/**
 * `resolve` for a target whose host is an IP literal: the same checks, synchronously (there is nothing to look
 * up). `undefined` when the host is a name, which only `resolve` handles.
 */
export const pinLiteral = (
  target: Target,
  options: { readonly allowPrivateNetwork: boolean }
): Result.Result<Pinned, UpstreamError> | undefined => {
  const { literal } = target
  if (literal === undefined) return undefined
  const checked = checkAddress(literal, target.hostname, options.allowPrivateNetwork)
  return Result.isFailure(checked)
    ? Result.fail(checked.failure)
    : Result.succeed({ ...target, addresses: [literal], address: literal })
}

/**
 * Resolve a URL's host once and check every address; the connection must go to the returned `address` and
 * nowhere else (no second lookup, so a rebinding answer cannot change the target after the check). A URL whose
 * host is an IP literal is checked without an Effect of its own (see `pinLiteral`).
 */
export const resolve = (
  raw: string,
  options: { readonly allowPrivateNetwork: boolean }
): Effect.Effect<Pinned, UpstreamError, Resolver> => {
  const target = parseTarget(raw)
  if (Result.isFailure(target)) return Effect.fail(target.failure)
  const literal = pinLiteral(target.success, options)
  return literal === undefined ? resolveName(target.success, options) : Effect.fromResult(literal)
}

/** `resolve` for a parsed target whose host is a name: one lookup, every address checked. */
export const resolveName = Effect.fn("Ssrf.resolve")(function* (
  target: Target,
  options: { readonly allowPrivateNetwork: boolean }
) {
  const addresses = yield* Resolver.use((r) => r.resolve(target.hostname))
  const first = addresses[0]
  if (first === undefined) {
    return yield* new UpstreamError({
      reason: "upstream_unreachable",
      message: `host ${target.hostname} has no address`,
      details: { host: target.hostname }
    })
  }
  // Every address must pass: a name that answers with a public and a private address is refused outright.
  for (const address of addresses) {
    yield* Effect.fromResult(checkAddress(address, target.hostname, options.allowPrivateNetwork))
  }
  const pinned: Pinned = { ...target, addresses, address: first }
  return pinned
})
