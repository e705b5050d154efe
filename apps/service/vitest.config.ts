import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "@kvmlab/service",
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    // One file at a time, in one process: each starts a service with worker threads, and some
    // start several processes and a PostgreSQL server. Run side by side on a 2-core machine that
    // other projects' tests also load, the processes of the vitest pool were starved long enough
    // for its calls to time out ("Timeout calling onTaskUpdate").
    pool: "forks",
    poolOptions: { forks: { singleFork: true } }
  }
})
