import { invalid } from '../../lib/errors.js';

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
