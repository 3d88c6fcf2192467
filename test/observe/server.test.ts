// The agent's observe server in-process, over a real unix socket: the bounded buffer of
// recent events and resuming after the last event a client printed.

import { connect } from "node:net";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import type { RuntimeEvent } from "../../src/events/event.ts";
import type { ObserveMessage, ObserveRequest } from "../../src/observe/protocol.ts";
import { ObserveServer } from "../../src/observe/server.ts";

const dir = mkdtempSync(join(tmpdir(), "palisade-observe-server-"));
let server: ObserveServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

const event = (pid: number): RuntimeEvent => ({ hook: "process.exec", action: "killed", policy: "p", rule: "r", process: { pid, uid: 0, binary: "/bin/sh" } });

async function start(options: Partial<ConstructorParameters<typeof ObserveServer>[0]> = {}): Promise<ObserveServer> {
  server = new ObserveServer({ path: join(dir, `s${Math.random().toString(36).slice(2)}.sock`), node: "n1", ...options });
  await server.listen();
  return server;
}

/** Connects, sends `request`, collects messages until `count` have come. */
async function receive(s: ObserveServer, request: ObserveRequest, count: number): Promise<ObserveMessage[]> {
  const socket = connect(s.path);
  socket.write(JSON.stringify(request) + "\n");
  const messages: ObserveMessage[] = [];
  const lines = createInterface({ input: socket });
  await new Promise<void>((resolve) =>
    lines.on("line", (line) => {
      messages.push(JSON.parse(line));
      if (messages.length === count) resolve();
    }),
  );
  socket.destroy();
  return messages;
}

const pids = (messages: ObserveMessage[]) => messages.flatMap((m) => (m.type === "event" ? [m.event.process.pid] : []));

describe("ObserveServer", () => {
  it("replays what it kept: at most bufferEvents, newest kept", async () => {
    const s = await start({ bufferEvents: 3 });
    for (let pid = 1; pid <= 5; pid++) s.publish(event(pid));
    const messages = await receive(s, { sinceMillis: 60_000 }, 4);
    expect(messages[0]).toMatchObject({ type: "hello", instance: s.instance, node: "n1" });
    expect(pids(messages)).toEqual([3, 4, 5]);
  });

  it("resumes after a client's last event from this instance, and says how many it can no longer give", async () => {
    const s = await start({ bufferEvents: 3 });
    for (let pid = 1; pid <= 3; pid++) s.publish(event(pid));
    expect(pids(await receive(s, { after: { instance: s.instance, seq: 2 } }, 2))).toEqual([3]);
    for (let pid = 4; pid <= 6; pid++) s.publish(event(pid));
    const messages = await receive(s, { after: { instance: s.instance, seq: 1 } }, 5);
    expect(messages[1]).toMatchObject({ type: "dropped", count: 2 });
    expect(pids(messages)).toEqual([4, 5, 6]);
  });

  it("gives a client of another instance (the agent restarted) everything it kept", async () => {
    const s = await start();
    s.publish(event(7));
    expect(pids(await receive(s, { after: { instance: "an-earlier-agent", seq: 99 } }, 2))).toEqual([7]);
  });

  it("trims by age", async () => {
    const s = await start({ bufferMaxAgeMillis: 50 });
    s.publish(event(1));
    await new Promise((r) => setTimeout(r, 100));
    s.publish(event(2));
    expect(pids(await receive(s, { sinceMillis: 60_000 }, 2))).toEqual([2]);
  });

  it("disconnects a client that never sends its request", async () => {
    const s = await start({ requestTimeoutMillis: 100 });
    const socket = connect(s.path);
    await new Promise((resolve) => socket.once("close", resolve));
    expect(s.clientCount).toBe(0);
  });

  it("refuses a path another live server holds", async () => {
    const first = await start();
    const second = new ObserveServer({ path: first.path, node: "n1" });
    await expect(second.listen()).rejects.toThrow(/another process serves observe there/);
  });
});
