/**
 * The SFTP probe: SSH servers speak first, so connecting and reading the identification line
 * (`SSH-2.0-<software>`, RFC 4253 §4.2; other lines may come before it) proves an SSH server listens. Nothing
 * is sent and no key exchange starts.
 */
import type { ProbeRequest } from "@switchboard/core/Probe"
import type { Resolver } from "@switchboard/core/Resolver"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { ProbeEnv } from "./internal/env.ts"
import { clean, fail, type ProbeFailure } from "./internal/failure.ts"
import * as Target from "./internal/target.ts"

export const DEFAULT_PORT = 22

/** Probe an SSH/SFTP server: config `host`, `port`. */
export const probe = (
  request: ProbeRequest,
  env: ProbeEnv
): Effect.Effect<string, ProbeFailure, Scope.Scope | Resolver> =>
  Effect.gen(function* () {
    const wire = yield* Target.openConfigured(request, env, DEFAULT_PORT)
    for (let i = 0; i < 20; i++) {
      const line = yield* wire.readLine(255)
      if (!line.startsWith("SSH-")) continue
      const match = /^SSH-([0-9.]+)-(\S+)/u.exec(line)
      if (match === null) return yield* fail("protocol_error", `${wire.where} sent a malformed SSH identification`)
      const [, version = "", software = ""] = match
      if (version !== "2.0" && version !== "1.99") {
        return yield* fail("protocol_error", `${wire.where} speaks SSH ${clean(version, 10)}, not SSH 2`)
      }
      return `SSH server ${clean(software, 80)} (protocol ${version}) at ${wire.where}`
    }
    return yield* fail("protocol_error", `${wire.where} does not speak SSH`)
  })
