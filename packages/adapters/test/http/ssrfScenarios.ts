/**
 * The SSRF bypass table and the rebinding and redirect scenarios, runnable in the test process (connection
 * attempts confined to loopback by the hook) and inside a loopback-only network namespace (attempts pass
 * through to the real network stack, which has nowhere to send them). Each outcome records what the guard
 * answered and how many connections were attempted.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { Resolver as ResolverPort } from "@switchboard/core/Resolver"
import { Upstream as UpstreamPort } from "@switchboard/core/Upstream"
import * as Resolver from "../../src/http/Resolver.ts"
import * as Upstream from "../../src/http/Upstream.ts"
import { echo, recordingConnect, server } from "./support.ts"

export interface Bypass {
  readonly url: string
  /** The rule the refusal must name (`details.rule`). */
  readonly rule: string
  readonly allowPrivateNetwork?: boolean
}

/** Names the fake resolver knows (as `nip.io`-style and rebinding services would answer). */
export const names: Readonly<Record<string, ReadonlyArray<ReadonlyArray<string>>>> = {
  localhost: [["127.0.0.1", "::1"]],
  "127.0.0.1.nip.io": [["127.0.0.1"]],
  "169.254.169.254.nip.io": [["169.254.169.254"]],
  "10.0.0.1.sslip.io": [["10.0.0.1"]],
  "metadata.google.internal": [["169.254.169.254"]],
  "mixed.example": [["93.184.215.14", "10.0.0.1"]],
  "v6-loopback.example": [["::1"]],
  "mapped.example": [["::ffff:169.254.169.254"]],
  "zero.example": [["0.0.0.0"]]
}

/** At least 30 ways to name a target the guard must refuse, each before any connection. */
export const bypasses: ReadonlyArray<Bypass> = [
  { url: "http://127.0.0.1/", rule: "loopback" },
  { url: "http://2130706433/", rule: "loopback" },
  { url: "http://0177.0.0.1/", rule: "loopback" },
  { url: "http://0x7f.1/", rule: "loopback" },
  { url: "http://127.1/", rule: "loopback" },
  { url: "http://0x7f000001/", rule: "loopback" },
  { url: "http://017700000001/", rule: "loopback" },
  { url: "http://0x7f.0x0.0x0.0x1/", rule: "loopback" },
  { url: "http://127.000.000.001:8080/", rule: "loopback" },
  { url: "http://127.0.0.1./", rule: "loopback" },
  { url: "http://%31%32%37.0.0.1/", rule: "loopback" },
  { url: "http://①②⑦.0.0.1/", rule: "loopback" },
  { url: "http://１２７.０.０.１/", rule: "loopback" },
  { url: "http://0/", rule: "this_network" },
  { url: "http://0.0.0.0:8080/", rule: "this_network", allowPrivateNetwork: true },
  { url: "http://10.0.0.5/", rule: "private" },
  { url: "http://172.16.3.4/", rule: "private" },
  { url: "http://192.168.1.1/", rule: "private" },
  { url: "http://100.64.0.1/", rule: "cgnat" },
  { url: "http://169.254.169.254/latest/meta-data/", rule: "metadata" },
  { url: "http://169.254.169.254/latest/meta-data/", rule: "metadata", allowPrivateNetwork: true },
  { url: "http://0xa9fea9fe/", rule: "metadata", allowPrivateNetwork: true },
  { url: "http://100.100.100.200/", rule: "metadata", allowPrivateNetwork: true },
  { url: "http://[fd00:ec2::254]/", rule: "metadata", allowPrivateNetwork: true },
  { url: "http://[::1]/", rule: "loopback" },
  { url: "http://[0000::1]:80/", rule: "loopback" },
  { url: "http://[::]/", rule: "unspecified", allowPrivateNetwork: true },
  { url: "http://[::ffff:127.0.0.1]/", rule: "loopback" },
  { url: "http://[::ffff:a9fe:a9fe]/", rule: "metadata", allowPrivateNetwork: true },
  { url: "http://[0:0:0:0:0:ffff:10.0.0.1]/", rule: "private" },
  { url: "http://[::ffff:0:7f00:1]/", rule: "loopback" },
  { url: "http://[::127.0.0.1]/", rule: "ipv4_compatible", allowPrivateNetwork: true },
  { url: "http://[64:ff9b::7f00:1]/", rule: "loopback" },
  { url: "http://[64:ff9b::a9fe:a9fe]/", rule: "metadata", allowPrivateNetwork: true },
  { url: "http://[2002:7f00:1::]/", rule: "loopback" },
  { url: "http://[2002:a9fe:a9fe::1]/", rule: "metadata", allowPrivateNetwork: true },
  { url: "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", rule: "teredo" },
  { url: "http://[fe80::1]/", rule: "link_local" },
  { url: "http://[fc00::1]/", rule: "unique_local" },
  { url: "http://[ff02::1]/", rule: "multicast", allowPrivateNetwork: true },
  { url: "http://224.0.0.1/", rule: "multicast", allowPrivateNetwork: true },
  { url: "http://255.255.255.255/", rule: "broadcast", allowPrivateNetwork: true },
  { url: "http://192.0.2.1/", rule: "documentation" },
  { url: "http://198.18.0.1/", rule: "benchmarking" },
  { url: "http://240.0.0.1/", rule: "reserved" },
  { url: "http://a@127.0.0.1/", rule: "userinfo", allowPrivateNetwork: true },
  { url: "http://user:pass@example.com/", rule: "userinfo" },
  { url: "http://example.com@127.0.0.1/", rule: "userinfo" },
  { url: "http://127.0.0.1:80@example.com/", rule: "userinfo" },
  { url: "http://127.0.0.1#@example.com/", rule: "loopback" },
  { url: "http://127.0.0.1\\@example.com/", rule: "loopback" },
  { url: "http://127.0.0.1.nip.io/", rule: "loopback" },
  { url: "http://169.254.169.254.nip.io/", rule: "metadata", allowPrivateNetwork: true },
  { url: "http://10.0.0.1.sslip.io/", rule: "private" },
  { url: "http://metadata.google.internal/computeMetadata/v1/", rule: "metadata", allowPrivateNetwork: true },
  { url: "http://LOCALHOST/", rule: "loopback" },
  { url: "http://localhost./", rule: "loopback" },
  { url: "http://ⓛocalhost/", rule: "loopback" },
  { url: "http://mixed.example/", rule: "private" },
  { url: "http://v6-loopback.example/", rule: "loopback" },
  { url: "http://mapped.example/", rule: "metadata", allowPrivateNetwork: true },
  { url: "http://zero.example/", rule: "this_network", allowPrivateNetwork: true },
  { url: "file:///etc/passwd", rule: "scheme" },
  { url: "gopher://127.0.0.1:70/_GET", rule: "scheme" },
  { url: "ftp://example.com/", rule: "scheme" }
]

export interface Outcome {
  readonly name: string
  readonly ok: boolean
  readonly reason: string
  readonly rule: string
  readonly message: string
  readonly attempts: ReadonlyArray<string>
  readonly lookups: ReadonlyArray<string>
  readonly status?: number | undefined
}

const env = (
  passThrough: boolean,
  table: Readonly<Record<string, ReadonlyArray<ReadonlyArray<string>>>>,
  simulated: Readonly<Record<string, number>> = {}
) => {
  const rec = recordingConnect({ passThrough, simulated })
  const lookups: Array<string> = []
  const layer = Upstream.layerWith({ connect: rec.connect }).pipe(
    Layer.provide(Resolver.layerTable(table, (h) => lookups.push(h)))
  )
  return { rec, lookups, layer }
}

const attempt = (
  name: string,
  url: string,
  allowPrivateNetwork: boolean,
  e: ReturnType<typeof env>
): Effect.Effect<Outcome> =>
  UpstreamPort.use((u) => u.request({ method: "GET", url, headers: {}, allowPrivateNetwork })).pipe(
    Effect.tap((r) => Stream.runDrain(r.body).pipe(Effect.ignore)),
    Effect.provide(e.layer),
    Effect.result,
    Effect.map((result) => {
      const base = {
        name,
        attempts: e.rec.attempts.map((a) => a.address),
        lookups: [...e.lookups]
      }
      if (result._tag === "Success") {
        return { ...base, ok: true, reason: "", rule: "", message: "", status: result.success.status }
      }
      const details = (result.failure.details ?? {}) as { readonly rule?: string }
      return {
        ...base,
        ok: false,
        reason: result.failure.reason,
        rule: details.rule ?? "",
        message: result.failure.message
      }
    })
  )

/** One bypass, with its own resolver and attempt log. */
export const runBypass = (b: Bypass, passThrough: boolean) =>
  attempt(
    `${b.url}${b.allowPrivateNetwork === true ? " (allow_private_network)" : ""}`,
    b.url,
    b.allowPrivateNetwork ?? false,
    env(passThrough, names)
  )

export const runBypasses = (passThrough: boolean) => Effect.forEach(bypasses, (b) => runBypass(b, passThrough))

/**
 * DNS rebinding: the first answer is public, later ones loopback. The public address is simulated by a loopback
 * server (the hook routes it there); the connection must go to that first answer after a single lookup.
 */
export const runRebinding = (passThrough: boolean) =>
  Effect.gen(function* () {
    const srv = yield* server(echo)
    const publicFirst = env(
      passThrough,
      { "rebind.example": [["93.184.215.14"], ["127.0.0.1"]] },
      {
        "93.184.215.14": srv.port
      }
    )
    const pinned = yield* attempt("rebinding: public, then loopback", "http://rebind.example/", false, publicFirst)
    const privateFirst = env(passThrough, { "rebind.example": [["10.0.0.7"], ["93.184.215.14"]] })
    const refused = yield* attempt("rebinding: private first", "http://rebind.example/", false, privateFirst)
    return { pinned, refused, hostHeaders: srv.seen.map((s) => s.headers.host ?? "") }
  })

/**
 * Redirects from an allowed upstream to refused targets: from a loopback server (allowed explicitly) to
 * metadata forms, and from a public host (simulated on loopback) to loopback without the explicit allowance.
 */
export const runRedirects = (passThrough: boolean) =>
  Effect.gen(function* () {
    const targets = [
      "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
      "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
      "http://metadata.google.internal/computeMetadata/v1/",
      "http://[fd00:ec2::254]/latest/meta-data/",
      "http://0.0.0.0/"
    ]
    const srv = yield* server((req, res) => {
      const index = Number((req.url ?? "/0").slice(1))
      res.writeHead(302, { location: targets[index] ?? "/" }).end()
    })
    const fromLoopback = yield* Effect.forEach(targets, (target, i) =>
      attempt(`redirect to ${target}`, `${srv.origin}/${i}`, true, env(passThrough, names))
    )
    const toLoopback = yield* server((_req, res) => res.writeHead(307, { location: `${srv.origin}/0` }).end())
    const fromPublic = yield* attempt(
      "redirect from a public host to loopback",
      "http://public.example/",
      false,
      env(passThrough, { "public.example": [["93.184.215.14"]] }, { "93.184.215.14": toLoopback.port })
    )
    return { fromLoopback, fromPublic, loopbackHits: srv.seen.length }
  })

/**
 * The system resolver, only where a lookup cannot leave the machine (the namespace): `localhost` answers from
 * /etc/hosts, and a name that needs DNS fails as unreachable.
 */
export const runResolver = Effect.gen(function* () {
  const resolver = yield* ResolverPort
  const localhost = yield* resolver.resolve("localhost")
  const missing = yield* Effect.flip(resolver.resolve("no-such-host.invalid"))
  return { localhost, missing: { reason: missing.reason, message: missing.message } }
}).pipe(Effect.provide(Resolver.layer))
