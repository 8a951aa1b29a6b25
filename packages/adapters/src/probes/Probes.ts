/**
 * The `Probe` port: one real, cheap check per strategy of the catalog (TCP connect; PostgreSQL/Redshift,
 * MySQL, MongoDB, Kafka and SSH handshakes; HTTP HEAD/GET; S3, GCS and Azure container checks; Kinesis), each
 * through the SSRF guard (sockets go to the checked address; HTTP goes through the guarded `Upstream`) and
 * bounded by the request's timeout. A failed probe is a `ProbeResult`, not an error; details never carry a
 * credential value (any that a server echoes is masked).
 */
import * as Masking from "@switchboard/core/Masking"
import { Probe, type ProbeRequest, type ProbeResult } from "@switchboard/core/Probe"
import { Resolver } from "@switchboard/core/Resolver"
import { Upstream } from "@switchboard/core/Upstream"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Dns from "node:dns/promises"
import type * as Tls from "node:tls"
import { type Connect, makeConnect } from "../http/Upstream.ts"
import * as Aws from "./Aws.ts"
import * as Azure from "./Azure.ts"
import * as Google from "./Google.ts"
import * as HttpProbe from "./Http.ts"
import type { ProbeEnv, SrvRecord } from "./internal/env.ts"
import { codeOf, ProbeFailure } from "./internal/failure.ts"
import type * as Http from "./internal/http.ts"
import * as Kafka from "./Kafka.ts"
import * as Mongo from "./Mongo.ts"
import * as Mysql from "./Mysql.ts"
import * as Postgres from "./Postgres.ts"
import * as Ssh from "./Ssh.ts"
import * as Tcp from "./Tcp.ts"

export type { Connect, SrvRecord }

export interface Options {
  /** The daemon-wide local-first switch: allow loopback and private targets for every probe. */
  readonly allowPrivateNetwork?: boolean | undefined
  /** Replaces how sockets are opened (tests count and confine attempts through it). */
  readonly connect?: Connect | undefined
  /** Extra trusted CA certificates for TLS targets. */
  readonly ca?: Tls.ConnectionOptions["ca"] | undefined
  /** Replaces SRV lookups (`mongodb+srv://`). */
  readonly resolveSrv?: ((name: string) => Effect.Effect<ReadonlyArray<SrvRecord>, ProbeFailure>) | undefined
}

const systemSrv = (name: string): Effect.Effect<ReadonlyArray<SrvRecord>, ProbeFailure> =>
  Effect.tryPromise({
    try: () => Dns.resolveSrv(name),
    catch: (cause) =>
      new ProbeFailure({ reason: "unreachable", detail: `could not look up ${name} (${codeOf(cause)})` })
  }).pipe(
    Effect.map((records) =>
      [...records]
        .sort((a, b) => a.priority - b.priority || b.weight - a.weight)
        .map((r) => ({ name: r.name, port: r.port }))
    )
  )

/** What a timeout message names: the host, the first bootstrap server, the bucket or the URL's host. */
const targetLabel = (request: ProbeRequest): string => {
  const c = request.config
  const pick = c.host ?? c.bootstrapServers ?? c.bucket ?? c.container ?? c.streamName
  if (pick !== undefined) return String(pick).split(",")[0] ?? "the target"
  if (typeof c.url === "string" && URL.canParse(c.url)) return new URL(c.url).host
  return "the target"
}

/** Replace every credential value a detail might carry (a server echoing a user name) with its mask. */
export const scrub = (detail: string, credentials: ProbeRequest["credentials"]): string => {
  let out = detail
  const values = Object.values(credentials)
    .map((v) => Redacted.value(v))
    .filter((v) => v.length >= 3)
    .sort((a, b) => b.length - a.length)
  for (const value of values) out = out.replaceAll(value, Masking.mask(value))
  return out
}

/** Build the service; it captures the `Resolver` and the `Upstream`, so the service itself needs nothing. */
export const make = (options: Options = {}) =>
  Effect.gen(function* () {
    const resolver = yield* Resolver
    const upstream = yield* Upstream
    const connect = options.connect ?? makeConnect(options.ca)
    const resolveSrv = options.resolveSrv ?? systemSrv

    const run = (request: ProbeRequest): Effect.Effect<string, ProbeFailure, Scope.Scope | Resolver | Upstream> => {
      const allowPrivateNetwork = request.allowPrivateNetwork || options.allowPrivateNetwork === true
      const env: ProbeEnv = { connect, allowPrivateNetwork, ca: options.ca, resolveSrv }
      const settings: Http.Settings = { allowPrivateNetwork, timeoutMillis: request.timeoutMillis }
      switch (request.strategy) {
        case "postgres":
          return Postgres.probe(request, env)
        case "mysql":
          return Mysql.probe(request, env)
        case "mongodb":
          return Mongo.probe(request, env)
        case "kafka":
          return Kafka.probe(request, env)
        case "ssh":
          return Ssh.probe(request, env)
        case "tcp":
          return Tcp.probe(request, env)
        case "http":
          return HttpProbe.probe(request, settings)
        case "s3":
          return Aws.s3(request, settings)
        case "kinesis":
          return Aws.kinesis(request, settings)
        case "gcs":
          return Google.gcs(request, settings)
        case "azure_blob":
          return Azure.blob(request, settings)
      }
    }

    const probe = (request: ProbeRequest): Effect.Effect<ProbeResult> => {
      const millis = Math.max(1, Math.floor(request.timeoutMillis))
      return run(request).pipe(
        Effect.scoped,
        Effect.provideService(Resolver, resolver),
        Effect.provideService(Upstream, upstream),
        Effect.timeoutOrElse({
          duration: Duration.millis(millis),
          orElse: () =>
            Effect.fail(
              new ProbeFailure({
                reason: "timeout",
                detail: `no answer from ${targetLabel(request)} within ${millis} ms`
              })
            )
        }),
        Effect.map((detail): ProbeResult => ({ ok: true, detail: scrub(detail, request.credentials) })),
        Effect.catchTag("ProbeFailure", (e) =>
          Effect.succeed<ProbeResult>({ ok: false, reason: e.reason, detail: scrub(e.detail, request.credentials) })
        ),
        Effect.catchDefect((defect) =>
          Effect.logError("a probe failed with a defect", Cause.die(defect)).pipe(
            Effect.as<ProbeResult>({ ok: false, reason: "protocol_error", detail: "the probe failed unexpectedly" })
          )
        ),
        Effect.withSpan("Probe.probe", { attributes: { strategy: request.strategy } })
      )
    }

    return Probe.of({ probe })
  })

/** The probes with the default options; needs a `Resolver` and an `Upstream`. */
export const layer = Layer.effect(Probe, make())

/** The probes with options (daemon-wide `allowPrivateNetwork`, a `connect` hook, extra CAs, an SRV resolver). */
export const layerWith = (options: Options) => Layer.effect(Probe, make(options))
