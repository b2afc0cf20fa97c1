/** Daemon configuration in layers: flags > environment (PREFIX + UPPER_SNAKE key) > a JSON file > the schema's defaults. */
import { promises as fs } from 'node:fs';
import { z } from 'zod';
import { invalid } from './errors.js';

/** The environment variable of a config key: logLevel → PREFIX_LOG_LEVEL. */
export const envName = (prefix: string, key: string) => `${prefix}${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

/** Values set in the environment for the keys of `shape`: numbers, booleans, lists (comma-separated), objects as JSON. */
export function envValues(shape: Record<string, z.ZodType>, prefix: string, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(shape)) {
    const name = envName(prefix, key);
    const v = env[name];
    if (v === undefined || v === '') continue;
    let inner: z.ZodType = schema;
    while (inner instanceof z.ZodDefault || inner instanceof z.ZodOptional || inner instanceof z.ZodPrefault) inner = inner.unwrap() as z.ZodType;
    if (inner instanceof z.ZodNumber) {
      const n = Number(v);
      if (!Number.isFinite(n)) throw invalid(`${name}: ${JSON.stringify(v)} is not a number`);
      out[key] = n;
    } else if (inner instanceof z.ZodBoolean) {
      if (!/^(1|0|true|false|yes|no|on|off)$/i.test(v)) throw invalid(`${name}: ${JSON.stringify(v)} is not a boolean`);
      out[key] = /^(1|true|yes|on)$/i.test(v);
    } else if (inner instanceof z.ZodArray) {
      out[key] = v.split(',').map((s) => s.trim()).filter(Boolean);
    } else if (inner instanceof z.ZodObject || inner instanceof z.ZodRecord || inner instanceof z.ZodPipe) {
      try {
        out[key] = JSON.parse(v) as unknown;
      } catch {
        throw invalid(`${name}: not JSON`);
      }
    } else out[key] = v;
  }
  return out;
}

/** The JSON object in a config file; a clear 400 naming the file otherwise. */
export async function readConfigFile(file: string, what: string): Promise<Record<string, unknown>> {
  try {
    const parsed = JSON.parse(await fs.readFile(file, 'utf8')) as unknown;
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('expected a JSON object');
    return parsed as Record<string, unknown>;
  } catch (err) {
    throw invalid(`${what} ${file}: ${(err as Error).message}`);
  }
}

/** Flags given (undefined = not given), minus the keys that are not config values. */
export function givenFlags(flags: object, skip: string[] = ['config']): Record<string, unknown> {
  return Object.fromEntries(Object.entries(flags).filter(([k, v]) => v !== undefined && !skip.includes(k)));
}

/** Validate the merged layers once; the first problem as a 400. */
export function validated<S extends z.ZodType>(schema: S, merged: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(merged);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw invalid(`${what}: ${i.path.join('.') || 'config'}: ${i.message}`);
  }
  return r.data;
}
