/**
 * The image registries the dashboard shows (--registry-url, repeatable): their manifest caches (entries, bytes,
 * hits, misses) read off each registry's own /metrics (`sampan registry`'s sampan_registry_cache_*), and the hit
 * rate of a pull-through mirror where the registry counts one. Read when asked and kept CACHE_MS: a page's visit
 * costs each registry one scrape at most every few seconds, however many pages look.
 */
import { errorMessage } from '../lib/errors.js';

const CACHE_MS = 5000;
const TIMEOUT_MS = 2000;

export interface RegistryStats {
  name: string;
  url: string;
  up: boolean;
  error?: string;
  /** Blob or manifest requests a mirror answered from its own store, and those it fetched upstream (when counted). */
  hits?: number;
  misses?: number;
  manifestCache?: { entries: number; bytes: number; hits: number; misses: number };
}

/** The sum of a metric's samples whose labels contain `labels` (Prometheus text format); undefined when absent. */
export function metric(text: string, name: string, labels = ''): number | undefined {
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== ' ' && line[name.length] !== '{')) continue;
    if (labels && !line.includes(labels)) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) sum = (sum ?? 0) + v;
  }
  return sum;
}

export class ImageRegistries {
  private cached?: { at: number; stats: Promise<RegistryStats[]> };

  constructor(private readonly urls: string[]) {}

  get configured(): boolean {
    return this.urls.length > 0;
  }

  stats(now = Date.now()): Promise<RegistryStats[]> {
    if (!this.cached || now - this.cached.at > CACHE_MS) this.cached = { at: now, stats: Promise.all(this.urls.map((u) => this.scrape(u))) };
    return this.cached.stats;
  }

  private async scrape(url: string): Promise<RegistryStats> {
    const name = new URL(url).host;
    try {
      const res = await fetch(new URL('/metrics', url), { signal: AbortSignal.timeout(TIMEOUT_MS) });
      if (!res.ok) throw new Error(`GET /metrics: ${res.status} ${res.statusText}`);
      const text = await res.text();
      const m = (n: string, l?: string) => metric(text, n, l);
      const entries = m('sampan_registry_cache_entries');
      const hits = m('sampan_registry_mirror_hits_total');
      const misses = m('sampan_registry_mirror_misses_total');
      return {
        name, url, up: true,
        ...(hits !== undefined && { hits, misses: misses ?? 0 }),
        ...(entries !== undefined && { manifestCache: { entries, bytes: m('sampan_registry_cache_bytes') ?? 0, hits: m('sampan_registry_cache_hits_total', 'cache="manifest"') ?? 0, misses: m('sampan_registry_cache_misses_total', 'cache="manifest"') ?? 0 } }),
      };
    } catch (err) {
      return { name, url, up: false, error: errorMessage(err) };
    }
  }
}
