import { defineConfig } from "vitest/config"

/** `pnpm test:stress`: the hardening runs that take minutes (not part of `pnpm test`). */
export default defineConfig({
  test: {
    include: ["test/e2e/hardening/**/*.stress.ts"],
    pool: "forks",
    testTimeout: 600_000,
    hookTimeout: 60_000
  }
})
