/**
 * AWS Signature Version 4 (the `Authorization: AWS4-HMAC-SHA256 …` header) on node:crypto, for the S3 bucket
 * check and the Kinesis stream check: canonical request, string to sign, the derived signing key and the
 * signature. Pure given the time: the caller passes `amzDate` from the `Clock`.
 */
import * as Crypto from "node:crypto"

export interface Credentials {
  readonly accessKeyId: string
  readonly secretAccessKey: string
  readonly sessionToken?: string | undefined
}

export interface SignInput {
  readonly method: string
  readonly url: URL
  /** Every header to sign (at least `host` and `x-amz-date`); names in any case. */
  readonly headers: Readonly<Record<string, string>>
  /** Hex SHA-256 of the payload (or `UNSIGNED-PAYLOAD`). */
  readonly payloadHash: string
  readonly region: string
  readonly service: string
  /** `YYYYMMDDTHHMMSSZ`. */
  readonly amzDate: string
}

export interface Signed {
  readonly authorization: string
  readonly signature: string
  readonly canonicalRequest: string
  readonly stringToSign: string
}

/** SHA-256 of the empty payload, hex. */
export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

export const sha256Hex = (data: string | Uint8Array): string => Crypto.createHash("sha256").update(data).digest("hex")

/** The `x-amz-date` form of a time. */
export const amzDate = (millis: number): string => new Date(millis).toISOString().replace(/[-:]|\.\d{3}/gu, "")

/** RFC 3986 percent-encoding of everything but unreserved characters. */
export const encodeRfc3986 = (text: string): string =>
  encodeURIComponent(text).replace(/[!'()*]/gu, (c) => `%${(c.codePointAt(0) ?? 0).toString(16).toUpperCase()}`)

const decode = (segment: string): string => {
  try {
    return decodeURIComponent(segment)
  } catch {
    return segment
  }
}

/** The canonical URI: each segment encoded once for S3, twice (as AWS specifies) for other services. */
export const canonicalUri = (url: URL, service: string): string => {
  const path = url.pathname === "" ? "/" : url.pathname
  return path
    .split("/")
    .map((segment) => {
      const once = encodeRfc3986(decode(segment))
      return service === "s3" ? once : encodeRfc3986(once)
    })
    .join("/")
}

export const canonicalQuery = (url: URL): string =>
  [...url.searchParams]
    .map(([k, v]) => [encodeRfc3986(k), encodeRfc3986(v)] as const)
    .sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("&")

const hmac = (key: Buffer | string, data: string): Buffer => Crypto.createHmac("sha256", key).update(data).digest()

/** Sign a request. */
export const sign = (input: SignInput, credentials: Credentials): Signed => {
  const headers = Object.entries(input.headers)
    .map(([k, v]) => [k.toLowerCase(), v.trim().replace(/\s+/gu, " ")] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  const signedHeaders = headers.map(([k]) => k).join(";")
  const canonicalRequest = [
    input.method.toUpperCase(),
    canonicalUri(input.url, input.service),
    canonicalQuery(input.url),
    headers.map(([k, v]) => `${k}:${v}\n`).join(""),
    signedHeaders,
    input.payloadHash
  ].join("\n")
  const day = input.amzDate.slice(0, 8)
  const scope = `${day}/${input.region}/${input.service}/aws4_request`
  const stringToSign = ["AWS4-HMAC-SHA256", input.amzDate, scope, sha256Hex(canonicalRequest)].join("\n")
  const key = hmac(
    hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, day), input.region), input.service),
    "aws4_request"
  )
  const signature = Crypto.createHmac("sha256", key).update(stringToSign).digest("hex")
  return {
    authorization: `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
    signature,
    canonicalRequest,
    stringToSign
  }
}
