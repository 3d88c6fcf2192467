// An informer: keeps a local copy of one kind of object (list, then watch from the list's
// resourceVersion) and reports every change. Semantics follow client-go's reflector, which
// @kubernetes/client-node's ListWatch does not give us: it stops for good on the first
// connection error (an API server restart) and reconnects without jitter.
//
// - The first list and every relist are paginated (`limit`/`continue`); a relist replaces
//   the store and reports the differences (objects gone while we were away are deleted).
// - Watches ask for bookmarks and a server-side timeout (5 to 10 minutes, randomised so a
//   fleet of agents does not reconnect in step) and resume from the last resourceVersion
//   seen: a watch that ends normally is simply reopened, nothing is listed again.
// - 410 Gone (the resourceVersion was compacted, or a continue token expired) relists.
// - Every failure (connection refused, reset, 5xx, 429, a watch that ends at once) waits an
//   exponential backoff with jitter, 0.8 s doubling to 30 s, reset by a watch that worked.
//   An agent on each of 5,000 nodes must never hammer an API server that is coming back.

import { ApiError, type KubeClient } from "./client.ts";

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid: string;
  resourceVersion: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

export type ChangeType = "added" | "modified" | "deleted";

export interface InformerOptions<T extends KubeObject> {
  /** The collection's path, e.g. "/api/v1/pods" or "/apis/palisade.dev/v1alpha1/tracingpolicies". */
  path: string;
  fieldSelector?: string;
  labelSelector?: string;
  /** Objects per list page (default 500). */
  pageSize?: number;
  backoff?: Partial<BackoffOptions>;
  /** Each change, in the order the server reported it. */
  onChange: (type: ChangeType, object: T) => void;
  /** After each complete list: the store now holds everything. */
  onSynced?: () => void;
  log?: (line: string) => void;
}

/** What the informer asked of the server: for tests and for the "never flood" promise. */
export interface InformerStats {
  lists: number;
  watches: number;
  failures: number;
  /** Relists caused by 410 Gone. */
  expired: number;
}

export const objectKey = (o: KubeObject): string => (o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name);

class Gone extends Error {
  override name = "Gone";
}

export class Informer<T extends KubeObject> {
  readonly store = new Map<string, T>();
  readonly stats: InformerStats = { lists: 0, watches: 0, failures: 0, expired: 0 };
  /** Resolves after the first complete list. */
  readonly synced: Promise<void>;
  private readonly client: KubeClient;
  private readonly options: InformerOptions<T>;
  private readonly backoff: Backoff;
  private readonly abort = new AbortController();
  private resourceVersion = "";
  private markSynced!: () => void;
  private running: Promise<void> | undefined;

  constructor(client: KubeClient, options: InformerOptions<T>) {
    this.client = client;
    this.options = options;
    this.backoff = new Backoff(options.backoff);
    this.synced = new Promise((resolve) => (this.markSynced = resolve));
  }

  start(): void {
    this.running ??= this.run();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  private log(line: string): void {
    this.options.log?.(`${this.options.path}: ${line}`);
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (!this.resourceVersion) await this.list();
        if (await this.watch()) this.backoff.reset();
        else await this.backoff.wait(this.abort.signal);
      } catch (e) {
        if (this.stopped) break;
        this.stats.failures++;
        if (e instanceof Gone || (e instanceof ApiError && e.status === 410)) {
          this.stats.expired++;
          this.resourceVersion = "";
          this.log(`resourceVersion expired (410 Gone); listing again`);
        } else {
          // A collection that is not served: for our policies, the CRDs are not installed.
          const hint = e instanceof ApiError && e.status === 404 ? " (is its CustomResourceDefinition installed? Palisade's are in api/crds/ and the Helm chart)" : "";
          this.log(`${(e as Error).message}${hint}; retrying`);
        }
        await this.backoff.wait(this.abort.signal);
      }
    }
  }

  private async list(): Promise<void> {
    const items: T[] = [];
    let continueToken: string | undefined;
    let resourceVersion = "";
    do {
      this.stats.lists++;
      const page = await this.client.get<{ metadata: { resourceVersion: string; continue?: string }; items: T[] }>(this.options.path, {
        limit: this.options.pageSize ?? 500,
        continue: continueToken,
        fieldSelector: this.options.fieldSelector,
        labelSelector: this.options.labelSelector,
      });
      items.push(...page.items);
      continueToken = page.metadata.continue || undefined;
      resourceVersion = page.metadata.resourceVersion;
    } while (continueToken && !this.stopped);
    if (this.stopped) return;
    this.replace(items);
    this.resourceVersion = resourceVersion;
    this.options.onSynced?.();
    this.markSynced();
  }

  /** The store becomes `items`; the differences are reported as changes. */
  private replace(items: T[]): void {
    const fresh = new Map(items.map((o) => [objectKey(o), o]));
    for (const [key, old] of this.store) {
      if (!fresh.has(key)) {
        this.store.delete(key);
        this.options.onChange("deleted", old);
      }
    }
    for (const [key, o] of fresh) {
      const old = this.store.get(key);
      this.store.set(key, o);
      if (!old) this.options.onChange("added", o);
      else if (old.metadata.resourceVersion !== o.metadata.resourceVersion) this.options.onChange("modified", o);
    }
  }

  /** Watches until the server ends the watch; whether the watch was a healthy one. */
  private async watch(): Promise<boolean> {
    const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
    const started = Date.now();
    let received = false;
    this.stats.watches++;
    await this.client.stream(
      this.options.path,
      {
        watch: true,
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds,
        fieldSelector: this.options.fieldSelector,
        labelSelector: this.options.labelSelector,
      },
      (event) => {
        received = true;
        this.handle(event as WatchEvent<T>);
      },
      { signal: this.abort.signal, idleMs: (timeoutSeconds + 30) * 1000 },
    );
    // A watch the server closes at once, again and again, must not become a busy loop.
    return received || Date.now() - started > 5_000;
  }

  private handle(event: WatchEvent<T>): void {
    switch (event.type) {
      case "ADDED":
      case "MODIFIED": {
        const o = event.object as T;
        this.store.set(objectKey(o), o);
        this.resourceVersion = o.metadata.resourceVersion;
        this.options.onChange(event.type === "ADDED" ? "added" : "modified", o);
        return;
      }
      case "DELETED": {
        const o = event.object as T;
        this.store.delete(objectKey(o));
        this.resourceVersion = o.metadata.resourceVersion;
        this.options.onChange("deleted", o);
        return;
      }
      case "BOOKMARK":
        this.resourceVersion = (event.object as KubeObject).metadata.resourceVersion;
        return;
      case "ERROR": {
        const status = event.object as { code?: number; message?: string; reason?: string };
        if (status.code === 410) throw new Gone(status.message ?? "resource version too old");
        throw new ApiError(status.code ?? 500, `watch error: ${status.message ?? JSON.stringify(status)}`, status.reason);
      }
    }
  }
}

interface WatchEvent<T> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: T | KubeObject | { code?: number; message?: string; reason?: string };
}

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

/** Exponential backoff with jitter: each wait is a random time between half and all of the current step. */
export class Backoff {
  private readonly options: BackoffOptions;
  private step = 0;

  constructor(options: Partial<BackoffOptions> = {}) {
    this.options = { initialMs: 800, maxMs: 30_000, ...options };
  }

  /** The next delay (and advances the step). */
  next(): number {
    const ceiling = Math.min(this.options.maxMs, this.options.initialMs * 2 ** this.step);
    if (ceiling < this.options.maxMs) this.step++;
    return ceiling * (0.5 + Math.random() * 0.5);
  }

  reset(): void {
    this.step = 0;
  }

  wait(signal: AbortSignal): Promise<void> {
    const ms = this.next();
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
      signal.addEventListener("abort", done, { once: true });
    });
  }
}
