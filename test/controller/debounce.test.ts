// Bursts of changes become one reconcile round.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Debounce } from "../../src/controller/debounce.ts";

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("Debounce", () => {
  it("runs once after a burst, when the changes stop", () => {
    let runs = 0;
    const d = new Debounce(() => runs++, 20, 250);
    for (let i = 0; i < 1000; i++) d.schedule();
    vi.advanceTimersByTime(19);
    expect(runs).toBe(0);
    vi.advanceTimersByTime(1);
    expect(runs).toBe(1);
    vi.advanceTimersByTime(1000);
    expect(runs).toBe(1);
  });

  it("does not wait longer than the ceiling while changes keep coming", () => {
    let runs = 0;
    const d = new Debounce(() => runs++, 20, 250);
    for (let t = 0; t < 1000; t += 10) {
      d.schedule();
      vi.advanceTimersByTime(10);
    }
    // One run per 250 ms of steady changes, not one per change and not none.
    expect(runs).toBe(4);
  });

  it("backs off after failures, and later() never delays a sooner run", () => {
    let runs = 0;
    const d = new Debounce(() => runs++, 20, 250);
    d.retry(); // 500 ms * 2, jittered: between 500 and 1000 ms
    vi.advanceTimersByTime(499);
    expect(runs).toBe(0);
    vi.advanceTimersByTime(501);
    expect(runs).toBe(1);
    d.schedule();
    d.later(5_000);
    vi.advanceTimersByTime(20);
    expect(runs).toBe(2);
    d.cancel();
  });
});
