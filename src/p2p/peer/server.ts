/**
 * A peer's two HTTP faces, each an app of the HTTP kit: the registry mirror for the local runtime (/v2/: manifests
 * pass through to the upstream, blobs come over P2P; errors in the registry's OCI flavour) and the piece API for
 * other peers and the scheduler (/p2p/v1/; errors in the kit's JSON flavour).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { finished } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { invalid, notFound, SampanError } from '../../lib/errors.js';
import { HttpApp, METHODS, type Reply, type Req } from '../../lib/http/app.js';
import { contentRange, parseRange } from '../../lib/http/range.js';
import { jsonFlavour, type ErrorFlavour } from '../../lib/http/status.js';
import type { Logger } from '../../lib/log.js';
import { sendStream } from '../../lib/streams.js';
import { blobUpstreamError, ociFlavour, regError, RegistryError } from '../../registry/index.js';
import { PIECE_DIGEST_HEADER, PIECE_ELSEWHERE, pieceCount, type PeerPreheatRequest, type PeerTaskSummary, type PeerTaskView, type TaskId } from '../protocol.js';
import type { PeerMetrics } from './metrics.js';
import type { TokenBucket } from './ratelimit.js';
import type { TaskPieces } from './task.js';
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

export class Mirror {
  /** Every path goes to the upstream, but /metrics and /healthz. */
  readonly app: HttpApp;

  constructor(private readonly o: MirrorOptions) {
    this.app = new HttpApp({ log: o.log, flavour: ociFlavour, metrics: { registry: o.metrics.registry, prefix: 'sampan_p2p_peer_mirror_' } })
      .metricsRoute(o.metrics.registry)
      .healthRoute(() => 'ok')
      .route(METHODS, '/*', 'mirror', ({ req, res }) => this.handle(req, res));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<Reply | void> {
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
      throw regError('UPSTREAM', `upstream ${target}: ${(err as Error).message}`);
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

  private async blob(req: IncomingMessage, res: ServerResponse, digest: TaskId, target: string): Promise<Reply | void> {
    const auth = typeof req.headers.authorization === 'string' ? req.headers.authorization : undefined;
    // the upstream decides who may read the blob (a HEAD, no bytes): pieces from peers must not bypass its auth
    let head: Response | undefined;
    try {
      head = await fetch(target, { method: 'HEAD', headers: auth ? { authorization: auth } : {}, redirect: 'follow' });
    } catch {
      head = undefined;
    }
    const local = this.o.tasks.complete(digest);
    if (head && !head.ok) throw blobUpstreamError(head.status, `upstream answered ${head.status}`, head.headers);
    if (!head && !local) throw regError('UPSTREAM', `upstream unreachable for ${digest}`);
    const size = head ? Number(head.headers.get('content-length')) : undefined;
    if (req.method === 'HEAD') {
      return { status: 200, headers: { 'Content-Type': 'application/octet-stream', 'Docker-Content-Digest': digest, 'Content-Length': local?.meta.size ?? size ?? 0 } };
    }
    let pieces: TaskPieces;
    const download = local ? undefined : this.o.tasks.get(digest, target, auth, Number.isFinite(size) ? size : undefined);
    try {
      pieces = local ?? (await download!.ready);
    } catch (err) {
      if (err instanceof RegistryError) throw err;
      // P2P could not start: the bytes straight from the upstream, as the runtime would have had them
      this.o.log.warn({ digest, err: (err as Error).message }, 'serving from the upstream directly');
      return this.forward(req, res, target);
    }
    const total = pieces.meta.size;
    const range = parseRange(req.headers.range, total);
    if (range === 'unsatisfiable') throw regError('RANGE_NOT_SATISFIABLE', `range ${req.headers.range} is outside the blob's ${total} bytes`, { size: total }, { 'Content-Range': contentRange(range, total) });
    const { start, end } = range ?? { start: 0, end: total };
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'docker-content-digest': digest, 'content-length': String(end - start), 'accept-ranges': 'bytes' };
    if (range) headers['content-range'] = contentRange(range, total);
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

/** A piece this peer does not send now: all its upload slots are busy, or (a seed) it sent that piece already. */
class PieceRefused extends SampanError {
  constructor(
    readonly reason: 'BUSY' | typeof PIECE_ELSEWHERE,
    message: string,
  ) {
    super('UNAVAILABLE', message, undefined, { 'Retry-After': '1' });
  }
}

/** The kit's JSON errors, with a refused piece's reason as the code (other peers act on it). */
const pieceFlavour: ErrorFlavour = {
  render(err) {
    const r = jsonFlavour.render(err);
    return err instanceof PieceRefused ? { ...r, body: { error: { code: err.reason, message: err.message } } } : r;
  },
};

/** What other peers ask of this one: piece lists (long-polled), pieces, preheat jobs. */
export class PieceApi {
  readonly app: HttpApp;
  private busy = 0;
  private readonly waiting: Array<() => void> = [];
  /** Per blob this peer is seeding from the upstream: the pieces it has begun to send (super-seeding). */
  private readonly seeded = new Map<TaskId, Set<number>>();

  constructor(private readonly o: PieceApiOptions) {
    this.app = new HttpApp({ log: o.log, flavour: pieceFlavour, metrics: { registry: o.metrics.registry, prefix: 'sampan_p2p_peer_' } })
      .route('POST', '/p2p/v1/preheat', 'preheat', (r) => this.preheat(r))
      .route('GET', '/p2p/v1/tasks', 'tasks', () => ({ status: 200, body: this.summary() }))
      .route('GET', '/p2p/v1/tasks/:task', 'task', (r) => ({ status: 200, body: this.view(this.task(r), true) }))
      .route('GET', '/p2p/v1/tasks/:task/pieces', 'pieces', (r) => this.pieces(r))
      .route('GET', '/p2p/v1/tasks/:task/pieces/:n(^\\d+$)', 'piece', (r) => this.piece(r.res, taskId(r), Number(r.param('n'))))
      .metricsRoute(o.metrics.registry)
      .healthRoute(() => 'ok');
  }

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

  private task(r: Req): TaskPieces {
    const id = taskId(r);
    const p = this.o.store.task(id);
    if (!p) throw notFound(`no task ${id}`);
    return p;
  }

  /** The piece list, once it holds more than `after` pieces (or is complete), or after `wait` ms. */
  private async pieces(r: Req): Promise<Reply | void> {
    const p = this.task(r);
    const after = Number(r.query.get('after') ?? -1);
    const wait = Math.min(Number(r.query.get('wait') ?? 0) || 0, 30_000);
    if (!(p.count() > after || p.complete || wait <= 0)) {
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
        r.res.on('close', done);
      });
    }
    if (!r.res.destroyed) return { status: 200, body: this.view(p) };
  }

  /** This peer is the seed of the blob and still reads it from the upstream. */
  private seeding(id: TaskId): boolean {
    return this.o.tasks.running(id)?.role === 'seed' && !this.o.store.task(id)?.complete;
  }

  private async piece(res: ServerResponse, id: TaskId, n: number): Promise<void> {
    const p = this.o.store.task(id);
    if (!p || !p.has(n)) throw notFound(`piece ${n} is not here`);
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
        throw new PieceRefused(PIECE_ELSEWHERE, `piece ${n} went out already: take it from another peer`);
      }
    } else this.seeded.delete(id);
    const first = sent !== undefined && !sent.has(n);
    if (first) sent!.add(n);
    if (!(await this.uploadSlot(res))) {
      if (first) sent!.delete(n);
      if (res.destroyed) return;
      this.o.metrics.busy.inc();
      throw new PieceRefused('BUSY', 'all upload slots are busy');
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

  private async preheat(r: Req): Promise<Reply> {
    const body = (await r.json()) as Partial<PeerPreheatRequest>;
    if (!DIGEST_RE.test(body.taskId ?? '') || !/^https?:\/\//.test(body.url ?? '')) throw invalid('taskId (a sha256 digest) and url are required');
    this.o.log.info({ task: body.taskId, url: body.url }, 'preheat');
    this.o.tasks.get(body.taskId!, body.url!, body.authorization);
    return { status: 202, body: { taskId: body.taskId } };
  }
}

function taskId(r: Req): TaskId {
  const id = r.param('task');
  if (!DIGEST_RE.test(id)) throw invalid('a task is a sha256 digest');
  return id;
}
