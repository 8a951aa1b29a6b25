/**
 * The signing and proof pieces of the probes against published test vectors: SCRAM-SHA-256 (RFC 7677 §3),
 * AWS Signature Version 4 (the AWS test suite's `get-vanilla`, and the S3 `GET Object` example), PostgreSQL's MD5
 * password hash, and the shape of Azure's Shared Key string to sign.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Crypto from "node:crypto"
import * as Azure from "../../src/probes/Azure.ts"
import * as Postgres from "../../src/probes/Postgres.ts"
import * as Scram from "../../src/probes/Scram.ts"
import * as SigV4 from "../../src/probes/SigV4.ts"

describe("SCRAM-SHA-256", () => {
  it.effect("computes the RFC 7677 exchange and checks the server's signature", () =>
    Effect.gen(function* () {
      const first = Scram.clientFirst("user", "rOprNGfwEbeRWgbNEkqO")
      assert.strictEqual(first.message, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
      const serverFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
      const server = Scram.parseServerFirst(serverFirst, first.nonce)
      assert.isTrue(Result.isSuccess(server))
      if (Result.isFailure(server)) return
      const final = yield* Scram.clientFinal("pencil", first, server.success)
      assert.strictEqual(
        final.message,
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
      )
      assert.isTrue(
        Result.isSuccess(
          Scram.verifyServerFinal("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", final.serverSignature)
        )
      )
      const forged = Scram.verifyServerFinal(`v=${Crypto.randomBytes(32).toString("base64")}`, final.serverSignature)
      assert.deepStrictEqual(
        forged,
        Result.fail("the server's SCRAM signature is wrong: it does not know the password")
      )
      assert.deepStrictEqual(
        Scram.verifyServerFinal("e=invalid-proof", final.serverSignature),
        Result.fail("the server refused the SCRAM proof: invalid-proof")
      )
    })
  )

  it("refuses a server nonce that does not extend ours, and iteration counts that would burn CPU", () => {
    assert.isTrue(Result.isFailure(Scram.parseServerFirst("r=other,s=c2FsdA==,i=4096", "mine")))
    assert.isTrue(Result.isFailure(Scram.parseServerFirst("r=mine,s=c2FsdA==,i=4096", "mine")))
    assert.deepStrictEqual(
      Scram.parseServerFirst("r=mineXYZ,s=c2FsdA==,i=50000000", "mine"),
      Result.fail("the server asks for 50000000 SCRAM iterations (at most 1000000 are done)")
    )
    assert.isTrue(Result.isFailure(Scram.parseServerFirst("garbage", "mine")))
  })

  it("escapes = and , in user names (saslname)", () => {
    assert.strictEqual(Scram.clientFirst("a=b,c", "n").bare, "n=a=3Db=2Cc,r=n")
  })
})

describe("AWS Signature Version 4", () => {
  const example = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }

  it("signs the test suite's get-vanilla request", () => {
    const signed = SigV4.sign(
      {
        method: "GET",
        url: new URL("https://example.amazonaws.com/"),
        headers: { Host: "example.amazonaws.com", "X-Amz-Date": "20150830T123600Z" },
        payloadHash: SigV4.EMPTY_SHA256,
        region: "us-east-1",
        service: "service",
        amzDate: "20150830T123600Z"
      },
      example
    )
    assert.strictEqual(
      signed.authorization,
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )
  })

  it("signs the S3 documentation's GET Object example", () => {
    const signed = SigV4.sign(
      {
        method: "GET",
        url: new URL("https://examplebucket.s3.amazonaws.com/test.txt"),
        headers: {
          host: "examplebucket.s3.amazonaws.com",
          range: "bytes=0-9",
          "x-amz-content-sha256": SigV4.EMPTY_SHA256,
          "x-amz-date": "20130524T000000Z"
        },
        payloadHash: SigV4.EMPTY_SHA256,
        region: "us-east-1",
        service: "s3",
        amzDate: "20130524T000000Z"
      },
      { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" }
    )
    assert.strictEqual(signed.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
  })

  it("formats x-amz-date and encodes paths and queries the RFC 3986 way", () => {
    assert.strictEqual(SigV4.amzDate(Date.UTC(2026, 2, 16, 14, 30, 5, 123)), "20260316T143005Z")
    assert.strictEqual(SigV4.canonicalUri(new URL("https://h/my%20bucket/a*b"), "s3"), "/my%20bucket/a%2Ab")
    assert.strictEqual(SigV4.canonicalUri(new URL("https://h/a%20b"), "kinesis"), "/a%2520b")
    assert.strictEqual(SigV4.canonicalQuery(new URL("https://h/?b=2&a=1&a=0&c=x y")), "a=0&a=1&b=2&c=x%20y")
  })
})

describe("PostgreSQL MD5 and Azure Shared Key", () => {
  it("hashes md5(md5(password + user) + salt) like libpq", () => {
    const salt = Buffer.from([1, 2, 3, 4])
    const inner = Crypto.createHash("md5").update("penciluser").digest("hex")
    const outer = Crypto.createHash("md5")
      .update(Buffer.concat([Buffer.from(inner), salt]))
      .digest("hex")
    assert.strictEqual(Postgres.md5Password("user", "pencil", salt), `md5${outer}`)
  })

  it("builds the Shared Key string to sign: verb, 11 empty standard headers, x-ms-* headers, the resource", () => {
    const url = new URL("http://127.0.0.1:10000/devstoreaccount1/reports?restype=container")
    const text = Azure.stringToSign("HEAD", url, "devstoreaccount1", {
      "x-ms-version": "2021-08-06",
      "x-ms-date": "Mon, 16 Mar 2026 14:30:00 GMT"
    })
    assert.strictEqual(
      text,
      "HEAD\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Mon, 16 Mar 2026 14:30:00 GMT\nx-ms-version:2021-08-06\n/devstoreaccount1/devstoreaccount1/reports\nrestype:container"
    )
  })
})
