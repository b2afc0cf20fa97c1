/** A container's HEALTHCHECK as configured: the probe it runs, and Docker's merge with the image's. */
import { invalid } from '../../lib/errors.js';
import type { HealthConfig } from '../../lib/oci.js';
import type { ContainerRecord } from './model.js';

const MIN_DURATION = 1e6; // 1ms

/** The argv a health check runs, or undefined when there is no check (none configured, NONE, unknown type). */
export function probeCommand(rec: ContainerRecord): string[] | undefined {
  const test = rec.Config.Healthcheck?.Test;
  if (!test?.length) return undefined;
  if (test[0] === 'CMD') return test.slice(1);
  if (test[0] === 'CMD-SHELL') {
    const shell = (rec.Config as { Shell?: string[] }).Shell;
    return [...(shell?.length ? shell : ['/bin/sh', '-c']), ...test.slice(1)];
  }
  return undefined;
}

/** Docker's merge with the image's HEALTHCHECK: fields the request leaves empty come from the image. */
export function mergeHealthcheck(user: HealthConfig | null | undefined, image: HealthConfig | undefined): HealthConfig | undefined {
  if (!user) return image;
  const h = { ...user };
  if (image) {
    if (!h.Test?.length) h.Test = image.Test;
    for (const k of ['Interval', 'Timeout', 'StartPeriod', 'StartInterval', 'Retries'] as const) if (!h[k] && image[k]) h[k] = image[k];
  }
  validateHealthcheck(h);
  return h;
}

function validateHealthcheck(h: HealthConfig): void {
  for (const k of ['Interval', 'Timeout', 'StartPeriod', 'StartInterval'] as const) {
    const v = h[k] ?? 0;
    if (v !== 0 && v < MIN_DURATION) throw invalid(`${k} in Healthcheck cannot be less than 1ms`);
  }
  if ((h.Retries ?? 0) < 0) throw invalid('Retries in Healthcheck cannot be negative');
}
