/**
 * Hex SHA-256 (node:crypto), the one digest of the adapters: the `digest` of the `AuditChain` and `ToolPins` ports
 * (core has no crypto; see `@switchboard/core/Canonical`), the audit chain's record hashes, and cassette bodies.
 */
import { createHash } from "node:crypto"

/** The SHA-256 of a text's UTF-8 bytes (or of bytes), in lower-case hex. */
export const sha256 = (data: string | Uint8Array): string => createHash("sha256").update(data).digest("hex")
