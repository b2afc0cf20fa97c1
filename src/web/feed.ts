/**
 * The dashboard's one live stream per browser (`GET /sampan/v1/ui/stream`, server-sent events). The manager
 * names topics, each read from its own in-memory indexes: a keyed list (the nodes, the releases) or a single value (the
 * summary). Once a second, and only while someone watches, each topic is read ONCE for all the browsers and
 * compared with what was sent last: the changed items go out as one `delta` event, the same bytes to every
 * browser. A browser that connects gets a `snapshot` of everything first. Nothing polls the engines, and a
 * browser never polls: a quiet cluster costs a read of the indexes a second and no bytes.
 */
import type { ServerResponse } from 'node:http';

export interface KeyedTopic<T = unknown> {
  kind: 'keyed';
  read(): Iterable<T>;
  key(item: T): string;
}
export interface ValueTopic<T = unknown> {
  kind: 'value';
  read(): T;
}
export type Topic = KeyedTopic | ValueTopic;

/** A topic's change in a delta: keyed items set (whole) and keys gone, or a value replaced. */
export type TopicDelta = { upsert: unknown[]; remove: string[] } | { value: unknown };

const TICK_MS = 1000;
/** An SSE comment keeps proxies and the browser from dropping a quiet stream. */
const KEEPALIVE_MS = 15_000;

interface TopicState {
  topic: Topic;
  /** Keyed: each item's JSON by key; value: the JSON. */
  last: Map<string, string> | string | undefined;
}

export class LiveFeed {
  private readonly topics = new Map<string, TopicState>();
  private readonly clients = new Set<ServerResponse>();
  private timer?: NodeJS.Timeout;
  private lastWrite = Date.now();

  constructor(private readonly tickMs = TICK_MS) {}

  add(name: string, topic: Topic): this {
    this.topics.set(name, { topic, last: undefined });
    return this;
  }

  get watchers(): number {
    return this.clients.size;
  }

  /** Streams to `res` (its headers not sent yet) until the client goes away. */
  subscribe(res: ServerResponse): void {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
    res.flushHeaders(); // the page knows its stream is open while the snapshot is made
    if (!this.clients.size) this.refresh(); // the first watcher: `last` may be long stale
    // made of the JSON already kept for the deltas: at 30,000 nodes, parsing and writing it again would cost more
    const parts = [...this.topics].map(([name, s]) => `${JSON.stringify(name)}:${s.topic.kind === 'keyed' ? `[${[...(s.last as Map<string, string>).values()].join(',')}]` : (s.last as string)}`);
    res.write(`retry: 2000\nevent: snapshot\ndata: {${parts.join(',')}}\n\n`);
    this.clients.add(res);
    res.once('close', () => {
      this.clients.delete(res);
      if (!this.clients.size) this.stop();
    });
    this.timer ??= setInterval(() => this.tick(), this.tickMs);
  }

  /** Reads every topic and answers what changed since the last read (and remembers the new state). */
  refresh(): Record<string, TopicDelta> {
    const out: Record<string, TopicDelta> = {};
    for (const [name, s] of this.topics) {
      if (s.topic.kind === 'value') {
        const j = JSON.stringify(s.topic.read() ?? null);
        if (j !== s.last) out[name] = { value: JSON.parse(j) };
        s.last = j;
        continue;
      }
      const before = (s.last as Map<string, string> | undefined) ?? new Map<string, string>();
      const now = new Map<string, string>();
      const upsert: unknown[] = [];
      for (const item of s.topic.read()) {
        const k = s.topic.key(item);
        const j = JSON.stringify(item);
        now.set(k, j);
        if (before.get(k) !== j) upsert.push(item);
      }
      const remove = [...before.keys()].filter((k) => !now.has(k));
      if (s.last === undefined || upsert.length || remove.length) out[name] = { upsert, remove };
      s.last = now;
    }
    return out;
  }

  private tick(): void {
    const delta = this.refresh();
    let msg = '';
    if (Object.keys(delta).length) msg = `event: delta\ndata: ${JSON.stringify(delta)}\n\n`;
    else if (Date.now() - this.lastWrite >= KEEPALIVE_MS) msg = ': keepalive\n\n';
    if (!msg) return;
    this.lastWrite = Date.now();
    for (const c of this.clients) c.write(msg);
  }

  private stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Ends every stream (the manager stops). */
  close(): void {
    this.stop();
    for (const c of this.clients) c.end();
    this.clients.clear();
  }
}
