import { defineConfig } from 'vitest/config';

// Test tiers (see README "Tests"): unit, flow, security, migrations, e2e.
// Each file gets its own process; servers in tests listen on 127.0.0.1 only.
export default defineConfig({
  test: {
    root: new URL('..', import.meta.url).pathname,
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    setupFiles: ['test/helpers/setup.ts'],
  },
});
