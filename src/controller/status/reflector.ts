// List, then watch from the list's version, forever: resumes an ended watch from the last
// version seen (bookmarks included), lists again after 410 Gone, and backs off on errors
// so an API server restart is met by a few retries, not a flood.

import { backoffMillis, KubeError, type KubeClient, type KubeObject, type ObjectList, type WatchEvent, type Watching } from "./kube.ts";

export interface ReflectorHandlers<T extends KubeObject> {
  /** A new or changed object (also every object of a fresh list). */
  upsert(object: T): void;
  /** An object that was deleted (also one that vanished between two lists). */
  remove(object: T): void;
  /** After each complete list: every object is known. */
  synced?(): void;
}

export interface Reflector {
  stop(): void;
}

export function startReflector<T extends KubeObject>(options: { client: KubeClient; path: string; handlers: ReflectorHandlers<T>; log: (line: string) => void }): Reflector {
  const { client, path, handlers, log } = options;
  const known = new Map<string, T>();
  let stopped = false;
  let watching: Watching | undefined;
  let sleeping: { timer: NodeJS.Timeout; wake: () => void } | undefined;

  const sleep = (millis: number) =>
    new Promise<void>((wake) => {
      sleeping = { timer: setTimeout(wake, millis), wake };
    });

  const keyOf = (object: T) => `${object.metadata.namespace ?? ""}/${object.metadata.name}`;

  async function list(): Promise<string> {
    const result = await client.get<ObjectList<T>>(path);
    const seen = new Set<string>();
    for (const item of result.items) {
      const key = keyOf(item);
      seen.add(key);
      known.set(key, item);
      handlers.upsert(item);
    }
    for (const [key, object] of known) {
      if (seen.has(key)) continue;
      known.delete(key);
      handlers.remove(object);
    }
    handlers.synced?.();
    return result.metadata.resourceVersion;
  }

  async function run() {
    let resourceVersion: string | undefined;
    let failures = 0;
    while (!stopped) {
      try {
        resourceVersion ??= await list();
        let gone = false;
        watching = await client.watch<T>(path, resourceVersion, (event: WatchEvent<T>) => {
          if (event.type === "ERROR") {
            // 410 Gone: our version is older than the server's history; list again.
            if (event.object.code === 410) gone = true;
            else log(`watch ${path}: ${event.object.message ?? JSON.stringify(event.object)}`);
            watching?.abort();
            return;
          }
          resourceVersion = event.object.metadata.resourceVersion;
          if (event.type === "BOOKMARK") return;
          const key = keyOf(event.object);
          if (event.type === "DELETED") {
            known.delete(key);
            handlers.remove(event.object);
          } else {
            known.set(key, event.object);
            handlers.upsert(event.object);
          }
        });
        failures = 0;
        await watching.ended;
        watching = undefined;
        if (gone) resourceVersion = undefined;
      } catch (err) {
        if (stopped) return;
        if (err instanceof KubeError && err.status === 410) resourceVersion = undefined;
        else log(`watch ${path}: ${(err as Error).message}; retrying`);
        await sleep(backoffMillis(failures++));
      }
    }
  }

  void run();
  return {
    stop() {
      stopped = true;
      watching?.abort();
      if (sleeping) {
        clearTimeout(sleeping.timer);
        sleeping.wake();
      }
    },
  };
}
