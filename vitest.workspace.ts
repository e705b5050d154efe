/**
 * The one list of test projects. Vitest 3.2 deprecates loading this file on its own, so
 * `vitest.config.ts` imports it into `test.projects` (no deprecation banner).
 */
export default ["packages/*", "apps/*"]
