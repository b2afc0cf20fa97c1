/**
 * One blob's download on a peer. The scheduler makes the first peer the seed, which streams the blob from the
 * upstream and cuts it into pieces; the others fetch pieces from the parents the scheduler gives them, check
 * each against the seed's digest, and report. No scheduler, or a seed that stalls: the upstream directly.
 * One file over ~500 lines: the seed's and the followers' paths share one task's piece state and its events.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import type { Logger } from '../../lib/log.js';
import { pieceCount, pieceSizeFor, type AnnounceResponse, type PeerRef, type ProgressRequest, type TaskId, type TaskMeta } from '../protocol.js';
import type { PeerMetrics } from './metrics.js';
import { ParentBusy, ParentClient, PieceElsewhere, SchedulerDown, UnknownTask, type SchedulerClient } from './remote.js';
import type { TokenBucket } from './ratelimit.js';
import { blobUpstreamError, isRefusal, regError } from '../../registry/index.js';

/** What the task needs of the piece store (src/p2p/store). */
export interface TaskPieces extends EventEmitter {
  meta: TaskMeta;
  setMeta(meta: TaskMeta): void;
  has(n: number): boolean;
  held(): number[];
  count(): number;
  complete: boolean;
  writePiece(n: number, data: Buffer, digest?: string): Promise<boolean>;
  finish(): Promise<boolean>;
  stream(start?: number, end?: number): Readable;
  readPiece(n: number): Promise<Buffer>;
  pieceDigest(n: number): string | undefined;
}
export interface TaskStore {
  task(id: TaskId): TaskPieces | undefined;
  open(id: TaskId, meta: TaskMeta): Promise<TaskPieces>;
}

export interface TaskDeps {
  self: PeerRef & { uploadSlots: number };
  store: TaskStore;
  scheduler: SchedulerClient;
  metrics: PeerMetrics;
  log: Logger;
  download: TokenBucket;
  /** Requests in flight to parents, in all (and at most 2 per parent). */
  concurrency: number;
  /** A parent that sent a corrupt piece is not asked again for this long. */
  blockMs: number;
  /** With no piece coming from anywhere for this long, a child goes to the upstream for the rest. */
  stallMs: number;
}

const sha256hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const REPORT_MS = 250;
/** Range requests to the upstream at once, for a child sent there; and tries per piece. */
const UPSTREAM_WORKERS = 4;
const UPSTREAM_ATTEMPTS = 4;
/** With the scheduler up but no piece for this many stall windows, a child goes to the upstream anyway. */
const STUCK_FACTOR = 4;
/** A child with nothing new still reports this often (for fresh parents). */
const IDLE_REPORT_MS = 1000;
/** How long a piece-list poll waits for news (a parent answers at once when it has any). */
const POLL_WAIT_MS = 10_000;
/** Parents polled at once, at most (the scheduler's current ones always). */
const MAX_PARENTS = 8;
/** A busy parent is not asked again for BUSY_MS, doubled with each busy answer in a row, up to BUSY_MAX_MS. */
const BUSY_MS = 250;
const BUSY_MAX_MS = 4000;
/** How long a piece a seed pointed elsewhere is not asked of it again. */
const DECLINE_MS = 1000;

interface Parent {
  client: ParentClient;
  pieces: Set<number>;
  complete: boolean;
  inflight: number;
  busyUntil: number;
  /** Busy answers in a row: each doubles the wait before asking it again. */
  busyRun: number;
  /** Pieces it pointed elsewhere (a super-seeding seed), until when. */
  declined: Map<number, number>;
  /** It is such a seed: asked only for pieces no other parent holds. */
  seeding: boolean;
  /** When the scheduler last listed it or it last gave a piece. */
  usefulAt: number;
  /** The highest piece it holds (-1: none yet). */
  top: number;
  poll?: AbortController;
}

export class DownloadTask extends EventEmitter {
  pieces?: TaskPieces;
  /** Resolves once the blob's size is known and its pieces can be streamed. */
  readonly ready: Promise<TaskPieces>;
  /** Resolves when the blob is complete and verified. */
  readonly done: Promise<void>;
  private setReady!: (p: TaskPieces) => void;
  private failReady!: (e: Error) => void;
  private readonly parents = new Map<string, Parent>();
  private readonly blocked = new Map<string, number>();
  private readonly inflight = new Set<number>();
  private report: ProgressRequest = {};
  private lastPieceAt = Date.now();
  private reportedAt = 0;
  private schedulerOkAt = Date.now();
  private upstreamStarted = false;
  private upstreamFailed?: Error;
  private finished = false;
  private backToSource = false;
  private wake?: () => void;
  private readonly stop = new AbortController();
  /** What this download is, and where its bytes came from (`sampan p2p status`). */
  role: 'seed' | 'child' | 'alone' = 'alone';
  fromPeers = 0;
  fromRegistry = 0;

  constructor(
    private readonly d: TaskDeps,
    readonly id: TaskId,
    /** The blob at the upstream registry, and the requester's Authorization for it. */
    readonly url: string,
    readonly authorization: string | undefined,
    /** The size, when a HEAD at the upstream told it already. */
    private readonly sizeHint?: number,
  ) {
    super();
    this.ready = new Promise((res, rej) => {
      this.setReady = res;
      this.failReady = rej;
    });
    this.ready.catch(() => undefined);
    this.done = this.run();
    this.done.catch(() => undefined);
  }

  private async open(meta: TaskMeta): Promise<TaskPieces> {
    if (!this.pieces) {
      this.pieces = this.d.store.task(this.id) ?? (await this.d.store.open(this.id, meta));
      this.setReady(this.pieces);
    }
    if (meta.pieceDigests.length > this.pieces.meta.pieceDigests.length) this.pieces.setMeta(meta);
    return this.pieces;
  }

  private async run(): Promise<void> {
    this.d.metrics.tasks.inc();
    try {
      const existing = this.d.store.task(this.id);
      if (existing?.complete) {
        this.pieces = existing;
        this.setReady(existing);
        return;
      }
      let ann: AnnounceResponse | undefined;
      try {
        ann = await this.announce();
      } catch (err) {
        if (!(err instanceof SchedulerDown)) throw err;
        this.d.log.warn({ task: this.id, err: err.message }, 'no scheduler: fetching from the upstream');
        this.d.metrics.backToSource.inc();
        return await this.fromUpstream(false);
      }
      this.role = ann.role;
      if (ann.role === 'seed') return await this.fromUpstream(true);
      return await this.asChild(ann);
    } catch (err) {
      this.failReady(err as Error);
      await this.sendReport({ failedTask: true }).catch(() => undefined);
      throw err;
    } finally {
      this.finished = true;
      this.stop.abort();
      for (const p of this.parents.values()) p.poll?.abort();
      this.d.metrics.tasks.dec();
    }
  }

  private announce(): Promise<AnnounceResponse> {
    const held = this.pieces?.held() ?? this.d.store.task(this.id)?.held();
    return this.d.scheduler.announce(this.id, { ...this.d.self, url: this.url, pieces: held, meta: this.pieces?.meta });
  }

  /** A progress report with what accumulated; the answer brings parents, meta and maybe leave to go to the upstream. */
  private async sendReport(extra: ProgressRequest = {}): Promise<void> {
    const r: ProgressRequest = { ...this.report, ...extra, digestsKnown: this.pieces?.meta.pieceDigests.length };
    this.reportedAt = Date.now();
    this.report = {};
    let res;
    try {
      res = await this.d.scheduler.progress(this.id, this.d.self.peerId, r);
    } catch (err) {
      if (err instanceof UnknownTask) {
        // the scheduler restarted: tell it again what we are and hold
        const ann = await this.announce().catch(() => undefined);
        if (ann) this.useParents(ann.parents);
        return;
      }
      if (!(err instanceof SchedulerDown)) throw err;
      // reports are advisory: pieces keep flowing from the parents we know; the stall rule covers the rest
      this.report = { pieces: [...(r.pieces ?? []), ...(this.report.pieces ?? [])], failed: [...(r.failed ?? []), ...(this.report.failed ?? [])], meta: this.report.meta ?? r.meta };
      return;
    }
    this.schedulerOkAt = Date.now();
    if (res.meta) await this.open(res.meta);
    this.useParents(res.parents);
    if (res.backToSource && !this.backToSource) this.backToSource = true;
    this.kick();
  }

  /**
   * A child reports when it has news, when its parents hold pieces it has no digest for yet (the answer brings
   * them), and otherwise once a second for fresh parents: hundreds of peers reporting four times a second for
   * nothing would keep the scheduler busy.
   */
  private reportDue(): boolean {
    if (this.report.pieces?.length || this.report.failed?.length || Date.now() - this.reportedAt >= IDLE_REPORT_MS) return true;
    const known = this.pieces?.meta.pieceDigests.length ?? 0;
    for (const p of this.parents.values()) if (p.top >= known) return true;
    return false;
  }

  private countIn(source: 'peer' | 'upstream', n: number): void {
    this.d.metrics.bytesIn.inc({ source }, n);
    if (source === 'peer') this.fromPeers += n;
    else this.fromRegistry += n;
  }

  private noteDone(n: number): void {
    (this.report.pieces ??= []).push(n);
    this.lastPieceAt = Date.now();
  }

  // ---------- the seed, or a peer on its own: the upstream ----------

  private async fromUpstream(seed: boolean): Promise<void> {
    const res = await this.fetchUpstream();
    const size = Number(res.headers.get('content-length'));
    if (!Number.isFinite(size)) throw regError('UPSTREAM', `the upstream sent ${this.id} without a length`);
    const meta: TaskMeta = { size, pieceSize: pieceSizeFor(size), pieceDigests: [] };
    const pieces = await this.open(meta);
    const timer = seed ? setInterval(() => void this.sendReport({ meta: { ...meta, pieceDigests: [...meta.pieceDigests] } }).catch(() => undefined), REPORT_MS) : undefined;
    try {
      // the bytes of the piece being filled, concatenated once it is full
      let parts: Buffer[] = [];
      let have = 0;
      let n = 0;
      const flush = async (piece: Buffer) => {
        const digest = sha256hex(piece);
        meta.pieceDigests[n] = digest;
        pieces.setMeta({ ...meta, pieceDigests: [...meta.pieceDigests] });
        if (!(await pieces.writePiece(n, piece, digest))) throw new Error(`piece ${n} of ${this.id} did not store`);
        this.noteDone(n);
        n++;
      };
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        await this.d.download.take(chunk.length);
        this.countIn('upstream', chunk.length);
        let c = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        while (have + c.length >= meta.pieceSize) {
          const need = meta.pieceSize - have;
          parts.push(c.subarray(0, need));
          await flush(Buffer.concat(parts, meta.pieceSize));
          parts = [];
          have = 0;
          c = c.subarray(need);
        }
        if (c.length) {
          parts.push(c);
          have += c.length;
        }
      }
      if (have || (size === 0 && n === 0 && pieceCount(size, meta.pieceSize) > 0)) await flush(Buffer.concat(parts, have));
      if (n !== pieceCount(size, meta.pieceSize)) throw new Error(`the upstream sent ${this.id} short: ${n} of ${pieceCount(size, meta.pieceSize)} pieces`);
      if (!(await pieces.finish())) throw new Error(`${this.id}: the blob does not match its digest`);
    } finally {
      if (timer) clearInterval(timer);
    }
    if (seed) await this.sendReport({ meta, finished: true }).catch(() => undefined);
  }

  private async fetchUpstream(range?: string): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.authorization) headers.authorization = this.authorization;
    if (range) headers.range = range;
    const res = await fetch(this.url, { headers, signal: this.stop.signal, redirect: 'follow' });
    if (!res.ok || !res.body) {
      const body = await res.text().catch(() => '');
      throw blobUpstreamError(res.status, body || `upstream answered ${res.status}`, res.headers);
    }
    return res;
  }

  // ---------- a child: pieces from parents ----------

  private async asChild(ann: AnnounceResponse): Promise<void> {
    if (ann.meta) await this.open(ann.meta);
    else if (this.sizeHint !== undefined) await this.open({ size: this.sizeHint, pieceSize: pieceSizeFor(this.sizeHint), pieceDigests: [] });
    this.useParents(ann.parents);
    const timer = setInterval(() => {
      if (this.reportDue()) void this.sendReport().catch(() => undefined);
    }, REPORT_MS);
    try {
      for (;;) {
        const p = this.pieces;
        if (p && p.count() === pieceCount(p.meta.size, p.meta.pieceSize)) break;
        if (this.upstreamFailed) throw this.upstreamFailed;
        if (!this.upstreamStarted && this.mayGoToSource()) {
          this.d.log.info({ task: this.id, granted: this.backToSource }, 'going to the upstream for the pieces no parent has');
          this.d.metrics.backToSource.inc();
          if (!p) {
            // nothing known of the blob yet: all of it, as a seed would
            await this.fromUpstream(false);
            break;
          }
          this.upstreamStarted = true;
          for (let i = 0; i < UPSTREAM_WORKERS; i++) void this.upstreamWorker();
        }
        this.schedule();
        await new Promise<void>((r) => {
          this.wake = r;
          setTimeout(r, REPORT_MS);
        });
      }
      const p = this.pieces!;
      while (this.inflight.size) await new Promise((r) => setTimeout(r, 10));
      if (!(await p.finish())) throw new Error(`${this.id}: the blob does not match its digest`);
    } finally {
      clearInterval(timer);
    }
    await this.sendReport({ finished: true }).catch(() => undefined);
  }

  private kick(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /**
   * Takes the scheduler's parents. Earlier ones are kept while there is room, since a parent that still has
   * pieces to give is worth its poll; past MAX_PARENTS the ones it no longer lists and that gave nothing for
   * longest go (every parent polled is a request per piece it gets, and hundreds of those cost real CPU).
   */
  private useParents(refs: PeerRef[]): void {
    const now = Date.now();
    const listed = new Set(refs.map((r) => r.peerId));
    for (const ref of refs) {
      const known = this.parents.get(ref.peerId);
      if (known) known.usefulAt = Math.max(known.usefulAt, now);
      if (ref.peerId === this.d.self.peerId || known) continue;
      if ((this.blocked.get(ref.peerId) ?? 0) > now) continue;
      const parent: Parent = { client: new ParentClient(ref), pieces: new Set(), complete: false, inflight: 0, busyUntil: 0, busyRun: 0, declined: new Map(), seeding: false, usefulAt: now, top: -1 };
      this.parents.set(ref.peerId, parent);
      void this.pollParent(parent);
    }
    if (this.parents.size <= MAX_PARENTS) return;
    const spare = [...this.parents.entries()].filter(([id, p]) => !listed.has(id) && p.inflight === 0).sort((a, b) => a[1].usefulAt - b[1].usefulAt);
    for (const [id, p] of spare.slice(0, this.parents.size - MAX_PARENTS)) {
      p.poll?.abort();
      this.parents.delete(id);
    }
  }

  private dropParent(id: string, reason: 'digest' | 'gone', piece = -1): void {
    const p = this.parents.get(id);
    p?.poll?.abort();
    this.parents.delete(id);
    if (reason === 'digest') this.blocked.set(id, Date.now() + this.d.blockMs);
    (this.report.failed ??= []).push({ piece, parent: id, reason });
    this.d.metrics.failures.inc({ reason });
    void this.sendReport().catch(() => undefined);
  }

  /** Keep a parent's piece list current by long-polling it. */
  private async pollParent(p: Parent): Promise<void> {
    p.poll = new AbortController();
    const signal = AbortSignal.any([p.poll.signal, this.stop.signal]);
    while (!this.finished && !p.complete && !signal.aborted && this.parents.get(p.client.ref.peerId) === p) {
      try {
        const view = await p.client.pieces(this.id, p.pieces.size, POLL_WAIT_MS, signal);
        if (!view) {
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        for (const n of view.pieces) {
          p.pieces.add(n);
          if (n > p.top) p.top = n;
        }
        p.complete = view.complete;
        if (view.meta && (!this.pieces || view.meta.size === this.pieces.meta.size)) {
          // a parent's sizes help a child start streaming; digests come only from the scheduler
          if (!this.pieces) await this.open({ ...view.meta, pieceDigests: [] });
        }
        this.kick();
      } catch {
        if (signal.aborted) return;
        this.dropParent(p.client.ref.peerId, 'gone');
        return;
      }
    }
  }

  /**
   * Start piece requests up to the limits, rarest first: the piece the fewest of our parents hold (ties at random),
   * from the least busy parent holding it. Children that all asked for the lowest pieces would hold the same ones
   * and have nothing to trade; rare pieces spread the blob over the mesh, so every peer's upload is used.
   */
  private schedule(): void {
    const pcs = this.pieces;
    if (!pcs) return;
    const total = pieceCount(pcs.meta.size, pcs.meta.pieceSize);
    const now = Date.now();
    const parents = [...this.parents.values()];
    while (this.inflight.size < this.d.concurrency) {
      let best: { n: number; rarity: number; tie: number; holders: Parent[] } | undefined;
      for (let n = 0; n < total; n++) {
        if (pcs.has(n) || this.inflight.has(n) || !pcs.meta.pieceDigests[n]) continue;
        let rarity = 0;
        const free: Parent[] = [];
        for (const p of parents) {
          if (!p.pieces.has(n)) continue;
          rarity++;
          if (p.inflight < 2 && p.busyUntil <= now && (p.declined.get(n) ?? 0) <= now) free.push(p);
        }
        if (!free.length) continue;
        const tie = Math.random();
        if (!best || rarity < best.rarity || (rarity === best.rarity && tie < best.tie)) best = { n, rarity, tie, holders: free };
      }
      if (!best) return;
      const parent = best.holders.sort((a, b) => Number(a.seeding) - Number(b.seeding) || a.inflight - b.inflight || Math.random() - 0.5)[0]!;
      void this.fetchPiece(best.n, parent);
    }
  }

  private async fetchPiece(n: number, parent: Parent): Promise<void> {
    const pcs = this.pieces!;
    this.inflight.add(n);
    parent.inflight++;
    const id = parent.client.ref.peerId;
    const t0 = Date.now();
    try {
      const { data } = await parent.client.piece(this.id, n, 30_000);
      this.d.log.debug({ task: this.id, piece: n, parent: id, ms: Date.now() - t0, inflight: this.inflight.size }, 'piece');
      await this.d.download.take(data.length);
      parent.busyRun = 0;
      parent.usefulAt = Date.now();
      // the store checks the bytes against the seed's digest (schedule() only asks for pieces whose digest is known)
      if (!(await pcs.writePiece(n, data))) {
        this.d.log.warn({ task: this.id, piece: n, parent: id }, 'corrupt piece: parent blocked');
        this.dropParent(id, 'digest', n);
        return;
      }
      this.countIn('peer', data.length);
      this.noteDone(n);
    } catch (err) {
      this.d.log.debug({ task: this.id, piece: n, parent: id, ms: Date.now() - t0, err: (err as Error).constructor.name }, 'piece not fetched');
      if (err instanceof PieceElsewhere) {
        parent.seeding = true;
        parent.declined.set(n, Date.now() + DECLINE_MS);
      } else if (err instanceof ParentBusy) {
        parent.busyUntil = Date.now() + Math.min(BUSY_MS * 2 ** parent.busyRun, BUSY_MAX_MS);
        parent.busyRun++;
        this.d.metrics.failures.inc({ reason: 'busy' });
      } else if (!this.finished) this.dropParent(id, 'gone', n);
    } finally {
      parent.inflight--;
      this.inflight.delete(n);
      this.kick();
    }
  }

  /**
   * Whether this child should fetch from the upstream itself: the scheduler said so (the seed stalled), or no
   * piece came for stallMs while the scheduler cannot be reached. With the scheduler up, its bounded grants
   * decide, so a dead seed does not send every child to the registry at once; a child stuck far longer than
   * that goes anyway.
   */
  private mayGoToSource(): boolean {
    if (this.backToSource) return true;
    const quiet = Date.now() - this.lastPieceAt;
    return (quiet > this.d.stallMs && Date.now() - this.schedulerOkAt > this.d.stallMs) || quiet > STUCK_FACTOR * this.d.stallMs;
  }

  /**
   * Fetches missing pieces by Range from the upstream, next to the parents: first the pieces no parent holds
   * (at random, so two children sent to the upstream do not fetch the same ones), each checked against the
   * seed's digest when known and retried a few times before the download fails.
   */
  private async upstreamWorker(): Promise<void> {
    const pcs = this.pieces!;
    const total = pieceCount(pcs.meta.size, pcs.meta.pieceSize);
    try {
      while (!this.finished && pcs.count() < total) {
        const m = this.pickForUpstream(total);
        if (m === undefined) {
          await new Promise((r) => setTimeout(r, REPORT_MS));
          continue;
        }
        this.inflight.add(m);
        try {
          await this.pieceFromUpstream(m);
        } finally {
          this.inflight.delete(m);
          this.kick();
        }
      }
    } catch (err) {
      this.upstreamFailed ??= err as Error;
      this.kick();
    }
  }

  private pickForUpstream(total: number): number | undefined {
    const pcs = this.pieces!;
    // pieces past the digests the seed gave block every child (they take no piece without one): those first, in
    // order, so this child can hand out their digests as the seed would have
    for (let n = pcs.meta.pieceDigests.length; n < total; n++) if (!pcs.has(n) && !this.inflight.has(n)) return n;
    const free: number[] = [];
    const unheld: number[] = [];
    for (let n = 0; n < total; n++) {
      if (pcs.has(n) || this.inflight.has(n)) continue;
      free.push(n);
      let held = false;
      for (const p of this.parents.values()) if (p.pieces.has(n)) held = true;
      if (!held) unheld.push(n);
    }
    const from = unheld.length ? unheld : free;
    return from.length ? from[Math.floor(Math.random() * from.length)] : undefined;
  }

  /** Digests of the upstream's pieces past the seed's, as far as they run on unbroken: reported like a seed's. */
  private extendDigests(): void {
    const pcs = this.pieces!;
    const total = pieceCount(pcs.meta.size, pcs.meta.pieceSize);
    const ds = [...pcs.meta.pieceDigests];
    for (let d = pcs.pieceDigest(ds.length); ds.length < total && d; d = pcs.pieceDigest(ds.length)) ds.push(d);
    if (ds.length === pcs.meta.pieceDigests.length) return;
    const meta = { ...pcs.meta, pieceDigests: ds };
    pcs.setMeta(meta);
    this.report.meta = meta;
  }

  private async pieceFromUpstream(m: number): Promise<void> {
    const pcs = this.pieces!;
    const start = m * pcs.meta.pieceSize;
    const end = Math.min(pcs.meta.size, start + pcs.meta.pieceSize) - 1;
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await this.fetchUpstream(`bytes=${start}-${end}`);
        const data = Buffer.from(await res.arrayBuffer());
        if (res.status !== 206 && data.length !== end - start + 1) throw new Error(`the upstream ignored the range for ${this.id}`);
        this.countIn('upstream', data.length);
        const want = pcs.meta.pieceDigests[m];
        if (want && sha256hex(data) !== want) throw new Error(`piece ${m} of ${this.id} from the upstream does not match the seed's digest`);
        if (await pcs.writePiece(m, data, want)) this.noteDone(m);
        if (!want) this.extendDigests();
        return;
      } catch (err) {
        if (this.finished || attempt >= UPSTREAM_ATTEMPTS || isRefusal(err)) throw err;
        this.d.log.warn({ task: this.id, piece: m, attempt, err: (err as Error).message }, 'piece from the upstream failed: retrying');
        await new Promise((r) => setTimeout(r, 1000 * attempt));
      }
    }
  }
}
