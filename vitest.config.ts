import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Kernel and apiserver tests (test/e2e) boot VMs and servers: allow them time.
    testTimeout: 60_000,
    // Separate processes: BPF objects and native addons must not share one worker.
    pool: 'forks',
    // One test file at a time: every loaded BPF program sees every process on the machine,
    // so kernel tests running side by side can kill each other's processes (a fail-closed
    // rule holds for any path too deep to resolve), and timing-sensitive VMs starve.
    fileParallelism: false,
  },
});
