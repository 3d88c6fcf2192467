// Turns bursts of changes into one run: the controller's reconcile and workload rounds.

/**
 * Runs `fn` once calls to schedule() have stopped for `quietMs`, or at the latest `maxMs`
 * after the first of them; retry() waits with backoff after a failure.
 */
export class Debounce {
  private timer: NodeJS.Timeout | undefined;
  private first = 0;
  private failures = 0;
  private readonly fn: () => void;
  private readonly quietMs: number;
  private readonly maxMs: number;

  constructor(fn: () => void, quietMs: number, maxMs: number) {
    this.fn = fn;
    this.quietMs = quietMs;
    this.maxMs = maxMs;
  }

  schedule(): void {
    const now = performance.now();
    if (!this.timer) this.first = now;
    this.failures = 0;
    this.set(Math.max(0, Math.min(this.quietMs, this.first + this.maxMs - now)));
  }

  /** Runs again after `ms`, unless something else schedules it sooner. */
  later(ms: number): void {
    if (!this.timer) this.set(ms);
  }

  retry(): void {
    this.failures++;
    this.set(Math.min(30_000, 500 * 2 ** Math.min(this.failures, 6)) * (0.5 + Math.random() * 0.5));
  }

  cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private set(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.fn();
    }, ms);
  }
}
