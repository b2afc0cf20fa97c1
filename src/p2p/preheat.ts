/**
 * Asking a scheduler to preheat an image (`POST /api/v1/preheat`) and following the job: what `sampan preheat`
 * does, and what a release calls before its first batch.
 */
import { SampanError, errorMessage } from '../lib/errors.js';
import { codeOfStatus } from '../lib/http/status.js';
import type { PreheatJob, PreheatRequest } from './protocol.js';

export interface PreheatOptions {
  /** Follow the job until it is done or failed (default), or return it once accepted. */
  wait?: boolean;
  /** Told the job each time it is read while waiting. */
  onProgress?: (job: PreheatJob) => void;
  /** How often the job is read while waiting (ms; default 500). */
  pollMs?: number;
  signal?: AbortSignal;
}

async function call(url: string, init: RequestInit, what: string): Promise<PreheatJob> {
  const res = await fetch(url, init).catch((err: unknown) => {
    if (init.signal?.aborted) throw err;
    throw new SampanError('UNAVAILABLE', `scheduler: ${what}: ${errorMessage(err)}`, err);
  });
  const text = await res.text();
  // what the scheduler refused (a bad image, an unknown job) keeps its status; its failures are it being unavailable
  if (!res.ok) throw new SampanError(res.status < 500 ? codeOfStatus(res.status) : 'UNAVAILABLE', `scheduler: ${what}: ${res.status} ${text.trim()}`);
  return JSON.parse(text) as PreheatJob;
}

/** Starts a preheat job at `scheduler` (its base URL) and, unless `wait: false`, follows it to its end. */
export async function preheat(scheduler: string, req: PreheatRequest, o: PreheatOptions = {}): Promise<PreheatJob> {
  const base = scheduler.replace(/\/+$/, '');
  let job = await call(`${base}/api/v1/preheat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(req), signal: o.signal }, 'preheat');
  while (o.wait !== false && (job.state === 'pending' || job.state === 'running')) {
    o.onProgress?.(job);
    await new Promise((r) => setTimeout(r, o.pollMs ?? 500));
    o.signal?.throwIfAborted();
    job = await call(`${base}/api/v1/preheat/${encodeURIComponent(job.id)}`, { signal: o.signal }, `preheat job ${job.id}`);
  }
  o.onProgress?.(job);
  return job;
}
