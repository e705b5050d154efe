import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "@kvmlab/service",
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000
  }
})
