import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "@kvmlab/api",
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000
  }
})
