/**
 * The engine's side of `resolve`: its embedded DNS asks the manager for the names of a cluster network that no
 * container here has. Names found are kept CACHE_MS (so a change is seen within a second); a miss is not kept, so a
 * container that starts right after someone asked for its name is seen as soon as the manager has it (the registry
 * watch's bound), not CACHE_MS later. Questions for one name in flight together share one request, and one left
 * unanswered for TIMEOUT_MS counts as no name (the responder then forwards the query upstream).
 */
import type { ResolvedMessage, ResolveMessage } from '../lib/node-protocol.js';

export const CACHE_MS = 500;
const TIMEOUT_MS = 1000;
/** Past this many names the cache starts over: a container asking random names must not grow it without bound. */
const MAX_CACHED = 10_000;

interface Waiting {
  key: string;
  resolve: (ips: string[]) => void;
  timer: NodeJS.Timeout;
}

export class ClusterNames {
  private seq = 0;
  private readonly waiting = new Map<number, Waiting>();
  private readonly inflight = new Map<string, Promise<string[]>>();
  private readonly cache = new Map<string, { ips: string[]; until: number }>();

  constructor(
    private readonly send: (m: ResolveMessage) => void,
    private readonly now: () => number = Date.now,
  ) {}

  resolve(network: string, name: string): Promise<string[]> {
    const key = `${network}\0${name}`;
    const hit = this.cache.get(key);
    if (hit && hit.until > this.now()) return Promise.resolve(hit.ips);
    const shared = this.inflight.get(key);
    if (shared) return shared;
    const seq = ++this.seq;
    const p = new Promise<string[]>((resolve) => {
      this.waiting.set(seq, { key, resolve, timer: setTimeout(() => this.finish(seq, []), TIMEOUT_MS) });
    });
    this.inflight.set(key, p);
    this.send({ type: 'resolve', seq, network, name });
    return p;
  }

  /** The manager's answer: kept for CACHE_MS when it names addresses; a miss is asked again next time. */
  settle(m: ResolvedMessage): void {
    const ips = Array.isArray(m.ips) ? m.ips.filter((x) => typeof x === 'string') : [];
    const w = this.finish(m.seq, ips);
    if (!w || !ips.length) return;
    if (this.cache.size >= MAX_CACHED) this.cache.clear();
    this.cache.set(w.key, { ips, until: this.now() + CACHE_MS });
  }

  /** The connection is gone: the questions in flight get no name, and the next manager is asked afresh. */
  reset(): void {
    for (const seq of [...this.waiting.keys()]) this.finish(seq, []);
    this.cache.clear();
  }

  private finish(seq: number, ips: string[]): Waiting | undefined {
    const w = this.waiting.get(seq);
    if (!w) return undefined;
    this.waiting.delete(seq);
    clearTimeout(w.timer);
    this.inflight.delete(w.key);
    w.resolve(ips);
    return w;
  }
}
