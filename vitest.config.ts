import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Kernel and apiserver tests (test/e2e) boot VMs and servers: allow them time.
    testTimeout: 60_000,
    // Separate processes: BPF objects and native addons must not share one worker.
    pool: 'forks',
  },
});
