import { defineConfig } from 'vitest/config';

// Benchmarks live in test/bench and run with `make bench`, never with the tests.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/bench/**', 'node_modules/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    benchmark: { include: ['test/bench/**/*.bench.ts'] },
    reporters: ['default'],
  },
});
