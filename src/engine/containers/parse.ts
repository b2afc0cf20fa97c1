import { invalid } from '../../lib/errors.js';

/** "64m", "1g", "512k", "100" → bytes (Docker's RAMInBytes). */
export function parseBytes(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?$/i.exec(s.trim());
  if (!m) throw invalid(`invalid size: ${JSON.stringify(s)}`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 }[m[2]!.toLowerCase() as '' | 'k'] ?? 1;
  return Math.floor(Number(m[1]) * mult);
}

/** Split "KEY=VALUE" env entries into a map, keeping order; later entries win. */
export function mergeEnv(...lists: Array<string[] | undefined | null>): string[] {
  const map = new Map<string, string>();
  for (const list of lists) {
    for (const e of list ?? []) {
      const i = e.indexOf('=');
      const k = i < 0 ? e : e.slice(0, i);
      if (!k) throw invalid(`invalid environment variable: ${e}`);
      if (i < 0) continue; // "KEY" alone: Docker takes it from the client's env; the CLI already did that
      map.delete(k);
      map.set(k, e);
    }
  }
  return [...map.values()];
}
