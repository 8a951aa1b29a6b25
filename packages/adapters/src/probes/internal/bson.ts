/**
 * Just enough BSON for a `hello` exchange: encoding a flat command document (strings, int32, booleans) and
 * decoding the top-level fields of a reply (scalars kept, nested documents and other types skipped by size).
 */

export type Scalar = string | number | boolean | null

/** Encode a flat document of strings, int32 numbers and booleans. */
export const encode = (doc: ReadonlyArray<readonly [string, string | number | boolean]>): Buffer => {
  const parts: Array<Buffer> = []
  for (const [name, value] of doc) {
    const key = Buffer.concat([Buffer.from(name, "utf8"), Buffer.from([0])])
    if (typeof value === "string") {
      const bytes = Buffer.from(value, "utf8")
      const len = Buffer.alloc(4)
      len.writeInt32LE(bytes.length + 1)
      parts.push(Buffer.from([0x02]), key, len, bytes, Buffer.from([0]))
    } else if (typeof value === "boolean") {
      parts.push(Buffer.from([0x08]), key, Buffer.from([value ? 1 : 0]))
    } else {
      const n = Buffer.alloc(4)
      n.writeInt32LE(value)
      parts.push(Buffer.from([0x10]), key, n)
    }
  }
  const body = Buffer.concat(parts)
  const size = Buffer.alloc(4)
  size.writeInt32LE(body.length + 5)
  return Buffer.concat([size, body, Buffer.from([0])])
}

const fixedSizes: Readonly<Record<number, number>> = {
  0x01: 8,
  0x06: 0,
  0x07: 12,
  0x08: 1,
  0x09: 8,
  0x0a: 0,
  0x10: 4,
  0x11: 8,
  0x12: 8,
  0x13: 16,
  0x7f: 0,
  0xff: 0
}

/** The top-level scalar fields of a document; `undefined` when it is malformed. */
export const decodeTop = (doc: Buffer): ReadonlyMap<string, Scalar> | undefined => {
  if (doc.length < 5 || doc.readInt32LE(0) !== doc.length) return undefined
  const out = new Map<string, Scalar>()
  let at = 4
  while (at < doc.length - 1) {
    const type = doc[at] ?? 0
    const nameEnd = doc.indexOf(0, at + 1)
    if (nameEnd === -1) return undefined
    const name = doc.subarray(at + 1, nameEnd).toString("utf8")
    at = nameEnd + 1
    if (at > doc.length) return undefined
    switch (type) {
      case 0x01:
        out.set(name, doc.readDoubleLE(at))
        break
      case 0x02:
        out.set(name, doc.subarray(at + 4, at + 4 + doc.readInt32LE(at) - 1).toString("utf8"))
        break
      case 0x08:
        out.set(name, doc[at] === 1)
        break
      case 0x0a:
        out.set(name, null)
        break
      case 0x10:
        out.set(name, doc.readInt32LE(at))
        break
      case 0x12:
        out.set(name, Number(doc.readBigInt64LE(at)))
        break
    }
    const fixed = fixedSizes[type]
    if (fixed !== undefined) at += fixed
    else if (type === 0x02 || type === 0x0d || type === 0x0e) at += 4 + doc.readInt32LE(at)
    else if (type === 0x03 || type === 0x04) at += doc.readInt32LE(at)
    else if (type === 0x05) at += 5 + doc.readInt32LE(at)
    else if (type === 0x0b) {
      const a = doc.indexOf(0, at)
      const b = a === -1 ? -1 : doc.indexOf(0, a + 1)
      if (b === -1) return undefined
      at = b + 1
    } else return undefined
  }
  return out
}
