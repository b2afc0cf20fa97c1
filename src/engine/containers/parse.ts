import { invalid } from '../../lib/errors.js';

const envKey = (e: string): string => e.split('=')[0]!;

/**
 * A process's environment from "KEY=VALUE" lists, later lists winning (Docker's ReplaceOrAppendEnvValues): a "KEY"
 * alone unsets KEY.
 */
export function mergeEnv(...lists: Array<string[] | undefined | null>): string[] {
  const map = new Map<string, string>();
  for (const list of lists) {
    for (const e of list ?? []) {
      const k = envKey(e);
      if (!k) throw invalid(`invalid environment variable: ${e}`);
      map.delete(k);
      if (e.includes('=')) map.set(k, e);
    }
  }
  return [...map.values()];
}

/**
 * Docker's merge of a config's Env over a base's (an image's): the config's entries as they are, a "KEY" alone too
 * (the docker CLI leaves it so when its own environment has no KEY), then the base's for the keys it does not name.
 */
export function overlayEnv(env: string[] | null | undefined, base: string[] | null | undefined): string[] {
  if (!env?.length) return [...(base ?? [])];
  for (const e of env) if (!envKey(e)) throw invalid(`invalid environment variable: ${e}`);
  const keys = new Set(env.map(envKey));
  return [...env, ...(base ?? []).filter((e) => !keys.has(envKey(e)))];
}
