// The event ring buffer's size is set from user space before loading; a restarted agent
// taking over the pinned maps keeps the buffer it finds. Needs root and BPF.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSync, closeSync, writeFileSync } from "node:fs";
import { DEFAULT_EVENT_BUFFER_BYTES, Enforcer } from "../../src/enforcer/index.ts";
import { EventLog, planOf, removeDir, requireKernel, tempDir } from "./support.ts";

const PIN_DIR = "/sys/fs/bpf/palisade-test-event-buffer";
let dir: string;
const opened: Enforcer[] = [];
const canRun = requireKernel();

beforeAll(() => {
  if (!canRun) return;
  Enforcer.removePinned(PIN_DIR);
  dir = tempDir("palisade-event-buffer");
  writeFileSync(`${dir}/watched`, "x");
});

afterAll(() => {
  for (const e of opened) e.close();
  Enforcer.removePinned(PIN_DIR);
  if (dir) removeDir(dir);
});

const open = (options: Parameters<typeof Enforcer.open>[0]) => {
  const e = Enforcer.open({ pinDir: PIN_DIR, ...options });
  opened.push(e);
  return e;
};

describe("event ring buffer size", () => {
  it("is the default unless asked; a taken-over buffer keeps its size, and events still arrive", async () => {
    const fresh = open({ reuse: false });
    expect(fresh.eventBufferBytes).toBe(DEFAULT_EVENT_BUFFER_BYTES);
    fresh.close();
    opened.length = 0;

    const plan = planOf({ name: "watch", rules: [{ name: "watched", hook: "file.open", match: `file.path == "${dir}/watched"`, action: "audit" }] });
    const small = open({ reuse: false, eventBufferBytes: 2 ** 20, plan });
    expect(small.eventBufferBytes).toBe(2 ** 20);
    small.close({ keepAttached: true });
    opened.length = 0;

    const log = new EventLog();
    const next = open({ eventBufferBytes: 8 * 2 ** 20, plan, onEvent: log.push, onError: log.error });
    expect(next.reusedMaps).toBe(true);
    expect(next.eventBufferBytes).toBe(2 ** 20);
    closeSync(openSync(`${dir}/watched`, "r"));
    const seen = await log.wait((e) => e.event.file?.path === `${dir}/watched`);
    expect(seen.event.rule).toBe("watched");
    expect(log.errors).toEqual([]);
  });

  it("refuses a size the kernel cannot take, saying why", () => {
    expect(() => Enforcer.open({ pinDir: PIN_DIR, eventBufferBytes: 3 * 2 ** 20 })).toThrow(/event ring buffer size 3145728: must be a power of two/);
  });
});
