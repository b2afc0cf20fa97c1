/**
 * P2P traffic for the dashboard: with --p2p-scheduler URL, the manager reads the P2P scheduler's
 * `GET /api/v1/traffic` every SAMPLE_MS (one small request, whatever the number of hosts: the scheduler already
 * hears every peer's progress, so nothing new is asked of the peers or the engines) and keeps, per repository,
 * the bytes hosts got from other peers and from the registry over time. A task the scheduler forgets (idle) keeps
 * the last bytes seen of it, so the series only grow.
 */
import type { TrafficView } from '../p2p/index.js';
import { errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';

const SAMPLE_MS = 5000;
/** 30 minutes of samples per repository, and the most recently active repositories only. */
const KEEP_SAMPLES = 360;
const KEEP_REPOS = 50;
const KEEP_TASKS = 20_000;

export interface TrafficSample {
  t: number;
  fromPeers: number;
  fromRegistry: number;
}

export interface P2pTrafficView {
  source: string;
  images: Array<{ image: string; samples: TrafficSample[] }>;
}

/** The repository of a blob's URL (…/v2/NAME/blobs/DIGEST), or the URL itself. */
export const repositoryOf = (url: string): string => {
  const m = /^(?:https?:\/\/([^/]+))?\/v2\/(.+)\/blobs\/[^/]+$/.exec(url);
  return m ? (m[1] ? `${m[1]}/${m[2]}` : m[2]!) : url;
};

export class P2pTraffic {
  private readonly tasks = new Map<string, { repo: string; fromPeers: number; fromSource: number }>();
  private readonly series = new Map<string, TrafficSample[]>();
  private timer?: NodeJS.Timeout;
  private failing = false;

  constructor(private readonly url: string, private readonly log: Logger) {}

  start(): void {
    void this.sample();
    this.timer = setInterval(() => void this.sample(), SAMPLE_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Reads the scheduler once and adds a sample to each repository that has moved bytes. */
  async sample(now = Date.now()): Promise<void> {
    let view: TrafficView;
    try {
      const res = await fetch(new URL('/api/v1/traffic', this.url), { signal: AbortSignal.timeout(3000) });
      if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
      view = (await res.json()) as TrafficView;
      if (this.failing) this.log.info({ scheduler: this.url }, 'P2P scheduler answers again');
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.log.warn({ scheduler: this.url, err: errorMessage(err) }, 'P2P traffic: the scheduler does not answer');
      this.failing = true;
      return;
    }
    for (const t of view.tasks) {
      const had = this.tasks.get(t.taskId);
      this.tasks.delete(t.taskId); // re-inserted last: the map's order is the recency the bound drops by
      this.tasks.set(t.taskId, { repo: repositoryOf(t.url), fromPeers: Math.max(had?.fromPeers ?? 0, t.fromPeers), fromSource: Math.max(had?.fromSource ?? 0, t.fromSource) });
    }
    while (this.tasks.size > KEEP_TASKS) this.tasks.delete(this.tasks.keys().next().value!);
    const sums = new Map<string, TrafficSample>();
    for (const t of this.tasks.values()) {
      const s = sums.get(t.repo) ?? { t: now, fromPeers: 0, fromRegistry: 0 };
      s.fromPeers += t.fromPeers;
      s.fromRegistry += t.fromSource;
      sums.set(t.repo, s);
    }
    for (const [repo, s] of sums) {
      const list = this.series.get(repo) ?? [];
      const last = list[list.length - 1];
      // a quiet repository adds no point until it moves again (the plot draws the flat part)
      if (last && last.fromPeers === s.fromPeers && last.fromRegistry === s.fromRegistry) continue;
      this.series.delete(repo);
      this.series.set(repo, [...list.slice(-(KEEP_SAMPLES - 1)), s]);
    }
    while (this.series.size > KEEP_REPOS) this.series.delete(this.series.keys().next().value!);
  }

  view(): P2pTrafficView {
    return { source: `the P2P scheduler at ${this.url}`, images: [...this.series].reverse().map(([image, samples]) => ({ image, samples })) };
  }
}
