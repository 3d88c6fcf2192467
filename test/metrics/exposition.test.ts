// The Prometheus text format as the registry writes it.

import { describe, expect, it } from "vitest";
import { Registry, type Sample } from "../../src/metrics/exposition.ts";
import { serveMetrics } from "../../src/metrics/server.ts";

describe("Registry.expose", () => {
  it("writes HELP, TYPE and samples per family, escaping label values and help text", () => {
    const r = new Registry();
    const events = r.values("counter", "demo_events_total", "Events seen.\nSecond line \\ backslash", ["policy", "rule"]);
    events.add(["prod", 'say "hi"\n']);
    events.add(["prod", 'say "hi"\n'], 2);
    r.collect("gauge", "demo_entries", "Entries.", (): Sample[] => [{ labels: { map: "a" }, value: 3 }, { labels: {}, value: Infinity }]);
    expect(r.expose()).toBe(
      "# HELP demo_events_total Events seen.\\nSecond line \\\\ backslash\n" +
        "# TYPE demo_events_total counter\n" +
        'demo_events_total{policy="prod",rule="say \\"hi\\"\\n"} 3\n' +
        "# HELP demo_entries Entries.\n" +
        "# TYPE demo_entries gauge\n" +
        'demo_entries{map="a"} 3\n' +
        "demo_entries +Inf\n",
    );
  });

  it("writes cumulative histogram buckets with +Inf, sum and count", () => {
    const r = new Registry();
    const h = r.histogram("demo_duration_seconds", "How long.", [0.1, 0.01, 1]);
    for (const v of [0.005, 0.05, 0.05, 2]) h.observe(v);
    expect(r.expose().split("\n").filter((l) => !l.startsWith("#"))).toEqual([
      'demo_duration_seconds_bucket{le="0.01"} 1',
      'demo_duration_seconds_bucket{le="0.1"} 3',
      'demo_duration_seconds_bucket{le="1"} 3',
      'demo_duration_seconds_bucket{le="+Inf"} 4',
      "demo_duration_seconds_sum 2.105",
      "demo_duration_seconds_count 4",
      "",
    ]);
  });

  it("refuses a counter without _total, an invalid name and a name twice", () => {
    const r = new Registry();
    expect(() => r.values("counter", "demo_events", "x")).toThrow(/end in _total/);
    expect(() => r.values("gauge", "demo-entries", "x")).toThrow(/not a valid Prometheus metric name/);
    r.values("gauge", "demo_entries", "x");
    expect(() => r.values("gauge", "demo_entries", "x")).toThrow(/registered twice/);
  });
});

describe("serveMetrics probes", () => {
  it("is live at once and ready only once a plan is in force", async () => {
    let ready = false;
    const server = await serveMetrics(new Registry(), "127.0.0.1:0", () => ready);
    try {
      const status = async (path: string) => (await fetch(`http://${server.address}${path}`)).status;
      expect(await status("/healthz")).toBe(200);
      expect(await status("/readyz")).toBe(503);
      ready = true;
      expect(await status("/readyz")).toBe(200);
      expect(await status("/metrics")).toBe(200);
    } finally {
      await server.close();
    }
  });
});
