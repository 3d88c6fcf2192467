import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { JsonLinesSink } from "../../src/sinks/jsonl.ts";
import type { RuntimeEvent } from "../../src/events/event.ts";

const event: RuntimeEvent = {
  process: { pid: 7, uid: 0, binary: "/bin/sh" }, hook: "process.exec", rule: "r", policy: "p", action: "killed", time: "2026-11-24T00:00:00Z",
};

describe("JsonLinesSink", () => {
  it("writes one object per line in the brief's field order, appending", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "palisade-jsonl-")), "events.jsonl");
    for (let i = 0; i < 2; i++) {
      const sink = new JsonLinesSink(file);
      sink.write(event);
      await sink.close();
    }
    const lines = readFileSync(file, "utf8").split("\n");
    expect(lines).toEqual([
      '{"time":"2026-11-24T00:00:00Z","hook":"process.exec","action":"killed","policy":"p","rule":"r","process":{"pid":7,"uid":0,"binary":"/bin/sh"}}',
      '{"time":"2026-11-24T00:00:00Z","hook":"process.exec","action":"killed","policy":"p","rule":"r","process":{"pid":7,"uid":0,"binary":"/bin/sh"}}',
      "",
    ]);
  });

  it("drops and counts lines when the destination does not drain, instead of growing without bound", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "palisade-jsonl-")), "events.jsonl");
    const sink = new JsonLinesSink(file, { maxPendingBytes: 1000 });
    for (let i = 0; i < 100; i++) sink.write(event); // all queued in one tick: nothing has drained yet
    await sink.close();
    const kept = readFileSync(file, "utf8").split("\n").filter(Boolean).length;
    expect(sink.written).toBe(kept);
    expect(sink.dropped).toBe(100 - kept);
    expect(sink.dropped).toBeGreaterThan(0);
  });
});
