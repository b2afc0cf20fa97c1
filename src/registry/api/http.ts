/** Small HTTP helpers for the registry API: responses, error rendering, bodies, upload ranges. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorBody, regError, RegistryError } from '../errors.js';

export const API_VERSION_HEADER = 'Docker-Distribution-API-Version';
export const API_VERSION = 'registry/2.0';

export type Headers = Record<string, string | number>;

/** Send a complete response; every response carries the Distribution API version header. */
export function send(res: ServerResponse, status: number, headers: Headers, body?: Buffer | string): number {
  headers[API_VERSION_HEADER] = API_VERSION;
  if (body === undefined) {
    if (status !== 204 && status !== 304 && headers['Content-Length'] === undefined) headers['Content-Length'] = 0;
    res.writeHead(status, headers);
    res.end();
    return 0;
  }
  const buf = typeof body === 'string' ? Buffer.from(body) : body;
  headers['Content-Length'] = buf.length;
  res.writeHead(status, headers);
  res.end(buf);
  return buf.length;
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Headers = {}): number {
  headers['Content-Type'] ??= 'application/json; charset=utf-8';
  return send(res, status, headers, JSON.stringify(value));
}

/** Unread request bodies up to this size are drained after an error (keeps the connection); larger ones close it. */
const DRAIN_LIMIT = 64 << 20;

export function sendError(req: IncomingMessage, res: ServerResponse, err: RegistryError): number {
  const headers: Headers = { 'Content-Type': 'application/json; charset=utf-8', ...err.headers };
  // a large body we did not read (an oversized manifest, a refused upload) is not worth draining
  if (!req.complete && hasBody(req)) {
    const cl = Number(req.headers['content-length']);
    if (!(cl <= DRAIN_LIMIT)) headers.Connection = 'close';
  }
  return send(res, err.status, headers, errorBody(err));
}

/** Whether the request carries a body (Content-Length > 0 or chunked). */
export function hasBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const cl = req.headers['content-length'];
  return cl !== undefined && cl !== '0';
}

export function contentLength(req: IncomingMessage): number | undefined {
  const cl = req.headers['content-length'];
  if (cl === undefined) return undefined;
  const n = Number(cl);
  if (!Number.isSafeInteger(n) || n < 0) throw regError('SIZE_INVALID', `invalid Content-Length ${JSON.stringify(cl)}`);
  return n;
}

/** The whole body, refusing (before reading it all) anything over `limit` bytes with `tooLarge`. */
export async function readBody(req: IncomingMessage, limit: number, tooLarge: () => RegistryError): Promise<Buffer> {
  const cl = contentLength(req);
  if (cl !== undefined && cl > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
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
