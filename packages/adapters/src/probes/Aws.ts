/**
 * The AWS probes, over the guarded HTTP client: a SigV4-signed `HEAD` of an S3 bucket (virtual-hosted on AWS,
 * path-style against an `endpoint` override for S3-compatible stores such as MinIO, or when `forcePathStyle`
 * says so) and a signed Kinesis `DescribeStreamSummary`. Without credentials the request goes unsigned, which
 * answers for public buckets and is refused otherwise. 403 is `authentication_failed`, a missing bucket or
 * stream `not_found`.
 */
import type { ProbeRequest } from "@switchboard/core/Probe"
import type { Upstream } from "@switchboard/core/Upstream"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { flag, secret, text } from "./internal/env.ts"
import { clean, fail, type ProbeFailure } from "./internal/failure.ts"
import * as Http from "./internal/http.ts"
import * as SigV4 from "./SigV4.ts"

const REGION = /^[a-z]{2}(?:-[a-z0-9]+)+-\d+$|^[a-z0-9-]{1,40}$/u
const BUCKET = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/u

const credentialsOf = (request: ProbeRequest): SigV4.Credentials | undefined => {
  const accessKeyId = secret(request, "access_key_id")
  const secretAccessKey = secret(request, "secret_access_key")
  if (accessKeyId === undefined || secretAccessKey === undefined) return undefined
  return { accessKeyId, secretAccessKey, sessionToken: secret(request, "session_token") }
}

const region = (request: ProbeRequest): Effect.Effect<string, ProbeFailure> => {
  const value = text(request, "region")?.trim()
  if (value === undefined) return fail("protocol_error", 'config field "region" is missing')
  return REGION.test(value)
    ? Effect.succeed(value)
    : fail("protocol_error", 'config field "region" is not an AWS region')
}

/** An `endpoint` override: an http(s) origin with an optional base path, without a trailing slash. */
const endpoint = (request: ProbeRequest): Effect.Effect<URL | undefined, ProbeFailure> => {
  const raw = text(request, "endpoint")?.trim()
  if (raw === undefined) return Effect.succeed(undefined)
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//iu.test(raw) ? raw : `https://${raw}`
  if (!URL.canParse(withScheme)) return fail("protocol_error", 'config field "endpoint" is not a valid URL')
  const url = new URL(withScheme)
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return fail("refused", 'config field "endpoint" must be an http or https URL')
  }
  url.search = ""
  url.hash = ""
  return Effect.succeed(url)
}

/** The override's path without its trailing slashes: `""` for an origin. */
const basePath = (url: URL): string => url.pathname.replace(/\/+$/u, "")

/** The URL of a bucket: path-style for endpoint overrides (unless `forcePathStyle` is false) and dotted names. */
export const bucketUrl = (
  bucket: string,
  region: string,
  override: URL | undefined,
  forcePathStyle: boolean | undefined
): URL => {
  if (override !== undefined) {
    if (forcePathStyle === false) {
      return new URL(`${override.protocol}//${bucket}.${override.host}${basePath(override)}/`)
    }
    return new URL(`${override.origin}${basePath(override)}/${encodeURIComponent(bucket)}`)
  }
  if (forcePathStyle === true || bucket.includes(".")) {
    return new URL(`https://s3.${region}.amazonaws.com/${encodeURIComponent(bucket)}`)
  }
  return new URL(`https://${bucket}.s3.${region}.amazonaws.com/`)
}

const signedHeaders = Effect.fn("Aws.signedHeaders")(function* (
  method: string,
  url: URL,
  headers: Record<string, string>,
  payloadHash: string,
  regionName: string,
  service: string,
  credentials: SigV4.Credentials | undefined
) {
  if (credentials === undefined) return headers
  const date = SigV4.amzDate(yield* Clock.currentTimeMillis)
  const toSign: Record<string, string> = {
    ...headers,
    host: url.host,
    "x-amz-date": date,
    ...(credentials.sessionToken === undefined ? {} : { "x-amz-security-token": credentials.sessionToken })
  }
  const signed = SigV4.sign(
    { method, url, headers: toSign, payloadHash, region: regionName, service, amzDate: date },
    credentials
  )
  const { host: _host, ...rest } = toSign
  return { ...rest, authorization: signed.authorization }
})

/** Probe an S3 bucket: config `bucket`, `region`, `endpoint`, `forcePathStyle`; credentials `access_key_id`, `secret_access_key`, `session_token`. */
export const s3 = (request: ProbeRequest, settings: Http.Settings): Effect.Effect<string, ProbeFailure, Upstream> =>
  Effect.gen(function* () {
    const bucket = text(request, "bucket")?.trim()
    if (bucket === undefined || !BUCKET.test(bucket)) {
      return yield* fail("protocol_error", 'config field "bucket" is missing or not a bucket name')
    }
    const regionName = yield* region(request)
    const url = bucketUrl(bucket, regionName, yield* endpoint(request), flag(request, "forcePathStyle"))
    const credentials = credentialsOf(request)
    const headers = yield* signedHeaders(
      "HEAD",
      url,
      { "x-amz-content-sha256": SigV4.EMPTY_SHA256 },
      SigV4.EMPTY_SHA256,
      regionName,
      "s3",
      credentials
    )
    const answer = yield* Http.call(settings, { method: "HEAD", url: url.href, headers })
    const where = url.host
    const signedNote = credentials === undefined ? " (unsigned: no credentials)" : ""
    if (answer.status >= 200 && answer.status < 300) return `bucket ${bucket} answers at ${where}${signedNote}`
    if (answer.status === 404) return yield* fail("not_found", `bucket ${bucket} does not exist at ${where}`)
    if (answer.status === 401 || answer.status === 403) {
      return yield* fail(
        "authentication_failed",
        credentials === undefined
          ? `${where} refused access to bucket ${bucket} without credentials (HTTP ${answer.status})`
          : `${where} refused the credentials for bucket ${bucket} (HTTP ${answer.status})`
      )
    }
    if (answer.status === 301 || answer.status === 400) {
      const elsewhere = answer.headers["x-amz-bucket-region"]
      if (elsewhere !== undefined && elsewhere !== regionName) {
        return yield* fail("protocol_error", `bucket ${bucket} is in region ${clean(elsewhere, 40)}, not ${regionName}`)
      }
    }
    return yield* fail("protocol_error", `${where} answered HEAD of bucket ${bucket} with HTTP ${answer.status}`)
  })

const authErrors: ReadonlySet<string> = new Set([
  "UnrecognizedClientException",
  "InvalidSignatureException",
  "AccessDeniedException",
  "MissingAuthenticationTokenException",
  "IncompleteSignatureException",
  "ExpiredTokenException"
])

/** Probe a Kinesis stream: config `streamName`, `region`, `endpoint`; the AWS credentials. */
export const kinesis = (
  request: ProbeRequest,
  settings: Http.Settings
): Effect.Effect<string, ProbeFailure, Upstream> =>
  Effect.gen(function* () {
    const stream = text(request, "streamName")?.trim()
    if (stream === undefined || !/^[A-Za-z0-9_.-]{1,128}$/u.test(stream)) {
      return yield* fail("protocol_error", 'config field "streamName" is missing or not a stream name')
    }
    const regionName = yield* region(request)
    const override = yield* endpoint(request)
    const url = new URL(
      override === undefined
        ? `https://kinesis.${regionName}.amazonaws.com/`
        : `${override.origin}${basePath(override)}/`
    )
    const body = Buffer.from(JSON.stringify({ StreamName: stream }), "utf8")
    const credentials = credentialsOf(request)
    const headers = yield* signedHeaders(
      "POST",
      url,
      {
        "content-type": "application/x-amz-json-1.1",
        "x-amz-target": "Kinesis_20131202.DescribeStreamSummary"
      },
      SigV4.sha256Hex(body),
      regionName,
      "kinesis",
      credentials
    )
    const answer = yield* Http.call(settings, { method: "POST", url: url.href, headers, body, keep: 16 * 1024 })
    const where = url.host
    if (answer.status === 200) return `Kinesis stream ${stream} answers at ${where}`
    const type =
      (typeof Http.json(answer.body)?.__type === "string" ? String(Http.json(answer.body)?.__type) : "")
        .split("#")
        .pop() ?? ""
    if (type === "ResourceNotFoundException")
      return yield* fail("not_found", `Kinesis stream ${stream} does not exist at ${where}`)
    if (authErrors.has(type) || answer.status === 403) {
      return yield* fail(
        "authentication_failed",
        `${where} refused the credentials (${clean(type, 60) || `HTTP ${answer.status}`})`
      )
    }
    return yield* fail(
      "protocol_error",
      `${where} answered DescribeStreamSummary with HTTP ${answer.status} ${clean(type, 60)}`.trim()
    )
  })
