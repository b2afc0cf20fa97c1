/**
 * What the one live stream (/sampan/v1/ui/stream) has said: the cluster's summary, its nodes and each service's
 * latest release, kept whole from a snapshot and the deltas after it. Pages subscribe to it; none of them opens
 * another stream.
 */
import { useEffect, useState } from 'preact/hooks';
import { sse } from './api.js';

export interface NodeView {
  id: string;
  name: string;
  labels: Record<string, string>;
  addr: string;
  state: 'up' | 'down';
  availability: 'active' | 'drain';
  containers: number;
  images: number;
  capacity: { ncpu: number; memTotal: number };
  version: string;
  joinedAt: string;
  degraded?: Record<string, string>;
}

export interface Summary {
  nodes: { total: number; up: number; down: number; degraded: number; drain: number };
  containers: { total: number; running: number };
  services: number;
  capacity: { ncpu: number; memTotal: number };
  reserved: { ncpu: number; memory: number };
}

type Delta = { upsert: unknown[]; remove: string[] } | { value: unknown };

/** A release record as the stream's `releases` topic carries it (keyed by service): docs/release.md's record. */
export interface ReleaseView {
  id: string;
  service: string;
  image: string;
  previousImage?: string;
  state: 'running' | 'waiting-confirm' | 'paused' | 'rolling-back' | 'rolled-back' | 'done' | 'failed';
  total: number;
  updated: number;
  failed: number;
  inFlight: number;
  stragglers?: number;
  prePulled?: number;
  batches: Array<{ n: number; slots: number[] | number; startedAt?: string; endedAt?: string }>;
  instances: Array<{ slot: number; node: string; state: string; image: string; startMs?: number }>;
  events: Array<{ time: string; type: string; message: string; user?: string }>;
  createdAt: string;
  confirmedBy?: string;
  confirmedAt?: string;
  finishedAt?: string;
}

/** The topics that are keyed lists; the others are values. */
const KEYED = new Set(['nodes', 'releases']);

class Live {
  summary?: Summary;
  readonly nodes = new Map<string, NodeView>();
  /** Each service's latest release, by service. */
  readonly releases = new Map<string, ReleaseView>();
  /** The other value topics the manager streams (p2p traffic, …), by name. */
  readonly values = new Map<string, unknown>();
  /** Bumped at each change: a page re-renders on it. */
  version = 0;
  connected = false;
  private readonly listeners = new Set<() => void>();
  private abort?: AbortController;

  get running(): boolean {
    return !!this.abort && !this.abort.signal.aborted;
  }

  start(): void {
    this.stop();
    this.abort = new AbortController();
    void sse('/sampan/v1/ui/stream', (type, data) => this.apply(type, JSON.parse(data) as Record<string, unknown>), this.abort.signal);
  }

  stop(): void {
    this.abort?.abort();
    this.connected = false;
  }

  private apply(type: string, msg: Record<string, unknown>): void {
    this.connected = true;
    if (type === 'snapshot') {
      // for bench/web/measure.ts: when the first snapshot arrived, next to the first render
      if (!performance.getEntriesByName('sampan:snapshot').length) performance.mark('sampan:snapshot');
      this.summary = msg.summary as Summary;
      this.nodes.clear();
      for (const n of msg.nodes as NodeView[]) this.nodes.set(n.id, n);
      this.releases.clear();
      for (const r of (msg.releases ?? []) as ReleaseView[]) this.releases.set(r.service, r);
      for (const [k, v] of Object.entries(msg)) if (k !== 'summary' && !KEYED.has(k)) this.values.set(k, v);
    } else if (type === 'delta') {
      const d = msg as Record<string, Delta>;
      if (d.summary && 'value' in d.summary) this.summary = d.summary.value as Summary;
      if (d.nodes && 'upsert' in d.nodes) {
        for (const n of d.nodes.upsert as NodeView[]) this.nodes.set(n.id, n);
        for (const id of d.nodes.remove) this.nodes.delete(id);
      }
      if (d.releases && 'upsert' in d.releases) {
        for (const r of d.releases.upsert as ReleaseView[]) this.releases.set(r.service, r);
        for (const s of d.releases.remove) this.releases.delete(s);
      }
      for (const [k, v] of Object.entries(d)) if (k !== 'summary' && !KEYED.has(k) && 'value' in v) this.values.set(k, v.value);
    } else return;
    this.version++;
    for (const l of this.listeners) l();
  }

  subscribe(l: () => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}

export const live = new Live();

/** Re-renders the calling component at each change of the live state; answers its version. */
export function useLive(): number {
  const [v, setV] = useState(live.version);
  useEffect(() => live.subscribe(() => setV(live.version)), []);
  return v;
}
