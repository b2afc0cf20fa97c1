import { invalid } from '../../lib/errors.js';
import { parseBytes } from '../../lib/units.js';

export interface LogConfig {
  Type: string;
  Config: Record<string, string>;
}

/**
 * conmon writes one file per container that `docker logs` reads: Docker's json-file driver in what it offers, and
 * named so, as Docker SDKs only read logs back from json-file (or journald) containers. k8s-file, the name conmon and
 * Podman use for it, is an alias. `none` keeps no log.
 */
export const LOG_DRIVERS = ['json-file', 'k8s-file', 'none'];
/** json-file options that are valid for Docker but change nothing here: a warning, not an error. */
const NO_EFFECT = new Set(['max-file', 'compress', 'labels', 'labels-regex', 'env', 'env-regex', 'tag']);

/** Validate a create request's LogConfig (Docker's errors for an unknown driver or option). */
export function normalizeLogConfig(lc: { Type?: string | null; Config?: Record<string, string> | null } | null | undefined): LogConfig {
  const type = lc?.Type || 'json-file';
  if (!LOG_DRIVERS.includes(type)) throw invalid(`logger: no log driver named '${type}' is registered`);
  const config = { ...(lc?.Config ?? {}) };
  for (const [k, v] of Object.entries(config)) {
    if (type === 'none') throw invalid(`unknown log opt '${k}' for none log driver`);
    if (k === 'max-size') {
      if (v !== '-1' && !(parseBytes(v) > 0)) throw invalid(`invalid value for log opt max-size: ${v}`);
    } else if (!NO_EFFECT.has(k)) throw invalid(`unknown log opt '${k}' for ${type} log driver`);
  }
  return { Type: type, Config: config };
}

export function logConfigWarnings(lc: LogConfig): string[] {
  return Object.keys(lc.Config)
    .filter((k) => NO_EFFECT.has(k))
    .map((k) => `log opt ${k} has no effect: the engine keeps one log file per container (max-size applies)`);
}

/** Can `docker logs` read it back? */
export function readable(lc: LogConfig): boolean {
  return lc.Type !== 'none';
}

/** The byte cap on the log file (conmon's --log-size-max), if any. */
export function logSizeMax(lc: LogConfig): number | undefined {
  const v = lc.Config['max-size'];
  return v && v !== '-1' ? parseBytes(v) : undefined;
}
