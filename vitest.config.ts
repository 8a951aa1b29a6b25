import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/dist/**", "test/bench/**"],
    pool: "forks",
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
