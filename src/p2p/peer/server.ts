/**
 * A peer's two HTTP faces: the registry mirror for the local runtime (/v2/: manifests pass through to the
 * upstream, blobs come over P2P) and the piece API for other peers and the scheduler (/p2p/v1/).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { finished } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { Logger } from '../../lib/log.js';
import { sendStream } from '../../lib/streams.js';
import { PIECE_DIGEST_HEADER, PIECE_ELSEWHERE, pieceCount, type PeerPreheatRequest, type PeerTaskSummary, type PeerTaskView, type TaskId } from '../protocol.js';
import type { PeerMetrics } from './metrics.js';
import type { TokenBucket } from './ratelimit.js';
import { HttpStatusError, type TaskPieces } from './task.js';
import type { TaskManager } from './tasks.js';

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
const BLOB_RE = /^\/v2\/(.+)\/blobs\/(sha256:[a-f0-9]{64})$/;
/** Headers a registry answer carries that the runtime needs. */
const RELAY = ['content-type', 'content-length', 'docker-content-digest', 'docker-distribution-api-version', 'www-authenticate', 'etag', 'link', 'location', 'content-range', 'accept-ranges'];

export interface MirrorOptions {
  /** Upstream base URL for requests that name no registry. */
  upstream: string;
  /** Per registry host (containerd's `?ns=HOST`, or a host given with HOST=URL). */
  upstreams: Map<string, string>;
  tasks: TaskManager;
  metrics: PeerMetrics;
  log: Logger;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function registryError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  send(res, status, { errors: [{ code, message }] }, headers);
}

/** `Range: bytes=a-b` (one range) → [start, endExclusive], or undefined for the whole blob. */
export function parseRange(h: string | undefined, size: number): [number, number] | 'bad' | undefined {
  if (!h) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(h.trim());
  if (!m || (!m[1] && !m[2])) return 'bad';
  let start: number;
  let end: number;
  if (!m[1]) {
    start = Math.max(0, size - Number(m[2]));
    end = size;
  } else {
    start = Number(m[1]);
    end = m[2] ? Math.min(size, Number(m[2]) + 1) : size;
  }
  if (start >= size || start >= end) return 'bad';
  return [start, end];
}

export class Mirror {
  constructor(private readonly o: MirrorOptions) {}

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://peer');
    const ns = url.searchParams.get('ns');
    url.searchParams.delete('ns');
    const base = (ns && this.o.upstreams.get(ns)) || this.o.upstream;
    const target = `${base.replace(/\/+$/, '')}${url.pathname}${url.search}`;
    const blob = BLOB_RE.exec(url.pathname);
    if (blob && (req.method === 'GET' || req.method === 'HEAD')) return this.blob(req, res, blob[2]!, target);
    return this.forward(req, res, target);
  }

  /** Pass a request through to the upstream as it is (auth challenges included). */
  private async forward(req: IncomingMessage, res: ServerResponse, target: string, method = req.method ?? 'GET'): Promise<void> {
    const headers: Record<string, string> = {};
    for (const h of ['authorization', 'accept', 'range', 'user-agent', 'content-type']) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    const hasBody = method !== 'GET' && method !== 'HEAD';
    let up: Response;
    try {
      up = await fetch(target, { method, headers, redirect: 'follow', body: hasBody ? (Readable.toWeb(req) as ReadableStream) : undefined, duplex: hasBody ? 'half' : undefined } as RequestInit);
    } catch (err) {
      return registryError(res, 502, 'UNAVAILABLE', `upstream ${target}: ${(err as Error).message}`);
    }
    const out: Record<string, string> = {};
    for (const h of RELAY) {
      const v = up.headers.get(h);
      if (v !== null) out[h] = v;
    }
    // fetch hands the body over decoded: a length from the wire would not match it
    if (up.headers.get('content-encoding')) delete out['content-length'];
    res.writeHead(up.status, out);
    if (method === 'HEAD' || !up.body) return void res.end();
    // an upstream that breaks off leaves the response destroyed: the runtime sees a short body and retries
    await sendStream(Readable.fromWeb(up.body as import('node:stream/web').ReadableStream), res).catch(() => undefined);
  }

  private async blob(req: IncomingMessage, res: ServerResponse, digest: TaskId, target: string): Promise<void> {
    const auth = typeof req.headers.authorization === 'string' ? req.headers.authorization : undefined;
    // the upstream decides who may read the blob (a HEAD, no bytes): pieces from peers must not bypass its auth
    let head: Response | undefined;
    try {
      head = await fetch(target, { method: 'HEAD', headers: auth ? { authorization: auth } : {}, redirect: 'follow' });
    } catch {
      head = undefined;
    }
    const local = this.o.tasks.complete(digest);
    if (head && !head.ok) {
      const h: Record<string, string> = {};
      const wa = head.headers.get('www-authenticate');
      if (wa) h['www-authenticate'] = wa;
      return registryError(res, head.status, head.status === 404 ? 'BLOB_UNKNOWN' : head.status === 401 ? 'UNAUTHORIZED' : 'DENIED', `upstream answered ${head.status}`, h);
    }
    if (!head && !local) return registryError(res, 502, 'UNAVAILABLE', `upstream unreachable for ${digest}`);
    const size = head ? Number(head.headers.get('content-length')) : undefined;
    if (req.method === 'HEAD') {
      return send(res, 200, '', { 'content-type': 'application/octet-stream', 'docker-content-digest': digest, 'content-length': String(local?.meta.size ?? size ?? 0) });
    }
    let pieces: TaskPieces;
    const download = local ? undefined : this.o.tasks.get(digest, target, auth, Number.isFinite(size) ? size : undefined);
    try {
      pieces = local ?? (await download!.ready);
    } catch (err) {
      if (err instanceof HttpStatusError) return registryError(res, err.status, 'UNAVAILABLE', err.message, err.headers);
      // P2P could not start: the bytes straight from the upstream, as the runtime would have had them
      this.o.log.warn({ digest, err: (err as Error).message }, 'serving from the upstream directly');
      return this.forward(req, res, target);
    }
    const total = pieces.meta.size;
    const range = parseRange(typeof req.headers.range === 'string' ? req.headers.range : undefined, total);
    if (range === 'bad') return registryError(res, 416, 'RANGE_INVALID', `invalid range for a blob of ${total} bytes`, { 'content-range': `bytes */${total}` });
    const [start, end] = range ?? [0, total];
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'docker-content-digest': digest, 'content-length': String(end - start), 'accept-ranges': 'bytes' };
    if (range) headers['content-range'] = `bytes ${start}-${end - 1}/${total}`;
    res.writeHead(range ? 206 : 200, headers);
    const stream = pieces.stream(start, end);
    // a download that fails ends the stream with an error (the runtime retries) instead of leaving it waiting
    download?.done.catch((err: Error) => stream.destroy(err));
    stream.on('data', (c: Buffer) => this.o.metrics.clientBytes.inc(c.length));
    await sendStream(stream, res).then(
      (all) => all || this.o.log.debug({ digest }, 'the runtime went away during a blob download'),
      (err: unknown) => this.o.log.warn({ digest, err: (err as Error).message }, 'blob stream to the runtime broke off'),
    );
  }
}

export interface PieceApiOptions {
  tasks: TaskManager;
  store: { task(id: TaskId): TaskPieces | undefined; tasksList(): Array<TaskPieces & { id: TaskId }> };
  uploadSlots: number;
  upload: TokenBucket;
  metrics: PeerMetrics;
  log: Logger;
}

/** Requests that may wait per upload slot: one keeps the link busy between pieces; more only add latency. */
const QUEUE_PER_SLOT = 1;
const QUEUE_WAIT_MS = 10_000;

/** What other peers ask of this one: piece lists (long-polled), pieces, preheat jobs. */
export class PieceApi {
  private busy = 0;
  private readonly waiting: Array<() => void> = [];
  /** Per blob this peer is seeding from the upstream: the pieces it has begun to send (super-seeding). */
  private readonly seeded = new Map<TaskId, Set<number>>();

  constructor(private readonly o: PieceApiOptions) {}

  private summary(): PeerTaskSummary[] {
    return this.o.store.tasksList().map((p) => {
      const t = this.o.tasks.running(p.id);
      return {
        id: p.id,
        size: p.meta.size,
        pieces: p.count(),
        total: pieceCount(p.meta.size, p.meta.pieceSize),
        complete: p.complete,
        active: t && { role: t.role, fromPeers: t.fromPeers, fromUpstream: t.fromRegistry },
      };
    });
  }

  /** Piece lists for other peers carry the sizes, not the digests: a child takes those only from the scheduler. */
  private view(p: TaskPieces, digests = false): PeerTaskView {
    return { meta: digests ? p.meta : { ...p.meta, pieceDigests: [] }, pieces: p.held(), complete: p.complete };
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://peer');
    if (req.method === 'POST' && url.pathname === '/p2p/v1/preheat') return this.preheat(req, res);
    if (req.method === 'GET' && url.pathname === '/p2p/v1/tasks') return send(res, 200, this.summary());
    const m = /^\/p2p\/v1\/tasks\/([^/]+)(\/pieces(?:\/(\d+))?)?$/.exec(url.pathname);
    if (!m || req.method !== 'GET') return send(res, 404, { error: { code: 'NOT_FOUND', message: 'no such route' } });
    const id = decodeURIComponent(m[1]!);
    if (!DIGEST_RE.test(id)) return send(res, 400, { error: { code: 'INVALID_ARGUMENT', message: 'a task is a sha256 digest' } });
    const p = this.o.store.task(id);
    if (m[3] !== undefined) return this.piece(res, id, p, Number(m[3]));
    if (!p) return send(res, 404, { error: { code: 'NOT_FOUND', message: `no task ${id}` } });
    if (!m[2]) return send(res, 200, this.view(p, true));
    const after = Number(url.searchParams.get('after') ?? -1);
    const wait = Math.min(Number(url.searchParams.get('wait') ?? 0) || 0, 30_000);
    if (p.count() > after || p.complete || wait <= 0) return send(res, 200, this.view(p));
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        p.off('piece', done);
        p.off('complete', done);
        resolve();
      };
      const timer = setTimeout(done, wait);
      p.on('piece', done);
      p.on('complete', done);
      res.on('close', done);
    });
    if (!res.destroyed) send(res, 200, this.view(p));
  }

  /** This peer is the seed of the blob and still reads it from the upstream. */
  private seeding(id: TaskId): boolean {
    return this.o.tasks.running(id)?.role === 'seed' && !this.o.store.task(id)?.complete;
  }

  private async piece(res: ServerResponse, id: TaskId, p: TaskPieces | undefined, n: number): Promise<void> {
    if (!p || !p.has(n)) return send(res, 404, { error: { code: 'NOT_FOUND', message: `piece ${n} is not here` } });
    // A seed still reading the blob from the upstream uploads no faster than it downloads: every second copy of
    // a piece it sends delays a piece nobody has yet. While it holds a piece it has not sent, it sends each piece
    // once and points the rest to the peers that have it (BitTorrent's super-seeding).
    let sent: Set<number> | undefined;
    if (this.seeding(id)) {
      sent = this.seeded.get(id);
      if (!sent) {
        // blobs seeded before and not asked for since
        for (const k of this.seeded.keys()) if (!this.seeding(k)) this.seeded.delete(k);
        this.seeded.set(id, (sent = new Set()));
      }
      if (sent.has(n) && p.count() > sent.size) {
        this.o.metrics.declined.inc();
        return send(res, 503, { error: { code: PIECE_ELSEWHERE, message: `piece ${n} went out already: take it from another peer` } }, { 'retry-after': '1' });
      }
    } else this.seeded.delete(id);
    const first = sent !== undefined && !sent.has(n);
    if (first) sent!.add(n);
    if (!(await this.uploadSlot(res))) {
      if (first) sent!.delete(n);
      if (res.destroyed) return;
      this.o.metrics.busy.inc();
      return send(res, 503, { error: { code: 'BUSY', message: 'all upload slots are busy' } }, { 'retry-after': '1' });
    }
    try {
      const data = await p.readPiece(n);
      await this.o.upload.take(data.length);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': data.length, [PIECE_DIGEST_HEADER]: p.pieceDigest(n) ?? '' });
      res.end(data);
      // the slot is held until the bytes are with the kernel, not just queued in this process
      if (await finished(res).then(() => true, () => false)) {
        this.o.metrics.piecesServed.inc();
        this.o.metrics.bytesOut.inc(data.length);
      }
    } finally {
      this.busy--;
      this.waiting.shift()?.();
    }
  }

  /**
   * A slot to send a piece: at once, or after the requests queued before it. Requests queue (a few per slot)
   * rather than bounce, so the link goes on to the next piece without a round trip, and pieces go out one after
   * the other at full rate instead of many at once at a fraction of it: a piece arrives sooner and is
   * passed on sooner. False when the queue is full, the wait too long, or the requester gone.
   */
  private uploadSlot(res: ServerResponse): Promise<boolean> {
    if (this.busy < this.o.uploadSlots) {
      this.busy++;
      return Promise.resolve(true);
    }
    if (this.waiting.length >= this.o.uploadSlots * QUEUE_PER_SLOT) return Promise.resolve(false);
    return new Promise((resolve) => {
      const end = (ok: boolean) => {
        clearTimeout(timer);
        res.off('close', gone);
        const i = this.waiting.indexOf(grant);
        if (i >= 0) this.waiting.splice(i, 1);
        resolve(ok);
      };
      const grant = () => {
        this.busy++;
        end(true);
      };
      const gone = () => end(false);
      const timer = setTimeout(gone, QUEUE_WAIT_MS);
      res.on('close', gone);
      this.waiting.push(grant);
    });
  }

  private async preheat(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body: PeerPreheatRequest;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString()) as PeerPreheatRequest;
    } catch {
      return send(res, 400, { error: { code: 'INVALID_ARGUMENT', message: 'body is not JSON' } });
    }
    if (!DIGEST_RE.test(body.taskId ?? '') || !/^https?:\/\//.test(body.url ?? '')) return send(res, 400, { error: { code: 'INVALID_ARGUMENT', message: 'taskId (a sha256 digest) and url are required' } });
    this.o.log.info({ task: body.taskId, url: body.url }, 'preheat');
    this.o.tasks.get(body.taskId, body.url, body.authorization);
    send(res, 202, { taskId: body.taskId });
  }
}

