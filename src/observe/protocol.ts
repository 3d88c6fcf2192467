// The observe stream between the agent (server.ts) and `palisade observe` (client.ts):
// newline-delimited JSON over a unix socket. The client sends one request line; the agent
// answers with a hello, then event and dropped messages until either side goes.

import type { RuntimeEvent } from "../events/event.ts";

export const DEFAULT_OBSERVE_SOCKET = "/run/palisade/observe.sock";

/** Client → agent, the only line the client sends. */
export interface ObserveRequest {
  /** Replay what the agent received within this many milliseconds before streaming live. */
  sinceMillis?: number;
  /**
   * Resume after the last event the client printed. From the same agent instance: the
   * events after `seq`; from another one (the agent restarted): every event it kept, all
   * of which came after the previous instance's.
   */
  after?: { instance: string; seq: number };
}

/** Agent → client. */
export type ObserveMessage =
  /** `instance`: this agent process, so a client can tell a restart from a reconnect. */
  | { type: "hello"; instance: string; node: string }
  /** `seq` rises by one per event within an instance. */
  | { type: "event"; seq: number; event: RuntimeEvent }
  /** Events this client will not see, and why. */
  | { type: "dropped"; count: number; reason: string };

/** The longest request line an agent reads: a request is far smaller. */
export const MAX_REQUEST_BYTES = 4096;
