/** Small HTTP helpers for the registry API: its version header, Content-Length, upload ranges, page sizes. */
import type { IncomingMessage } from 'node:http';
import { regError } from '../errors.js';

export const API_VERSION_HEADER = 'Docker-Distribution-API-Version';
export const API_VERSION = 'registry/2.0';

export type Headers = Record<string, string | number>;

export function contentLength(req: IncomingMessage): number | undefined {
  const cl = req.headers['content-length'];
  if (cl === undefined) return undefined;
  const n = Number(cl);
  if (!Number.isSafeInteger(n) || n < 0) throw regError('SIZE_INVALID', `invalid Content-Length ${JSON.stringify(cl)}`);
  return n;
}

/** A chunk's Content-Range as the spec writes it: `<start>-<end>`, inclusive. */
export function parseContentRange(v: string): { start: number; end: number } | undefined {
  const m = /^(\d{1,15})-(\d{1,15})$/.exec(v.trim());
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  return end >= start ? { start, end } : undefined;
}

/** The upload status Range header: `0-<last byte>` (`0-0` before the first byte, as Distribution does). */
export function uploadRange(offset: number): string {
  return `0-${offset > 0 ? offset - 1 : 0}`;
}

/** A non-negative page size `n`; PAGINATION_NUMBER_INVALID otherwise. */
export function parseN(v: string | null): number | undefined {
  if (v === null || v === '') return undefined;
  if (!/^\d{1,9}$/.test(v)) throw regError('PAGINATION_NUMBER_INVALID', `n must be a non-negative integer, not ${JSON.stringify(v.slice(0, 50))}`, { n: v.slice(0, 50) });
  return Number(v);
}
