/** HTTP clients of a peer: the scheduler's API and other peers' piece API (src/p2p/protocol.ts). */
import { Agent, request } from 'undici';
import type { AnnounceRequest, AnnounceResponse, PeerRef, PeerTaskView, ProgressRequest, ProgressResponse, RegisterPeerRequest, TaskId } from '../protocol.js';
import { PIECE_DIGEST_HEADER, PIECE_ELSEWHERE } from '../protocol.js';

/** The scheduler cannot be reached (or answers garbage): the peer falls back to the upstream. */
export class SchedulerDown extends Error {}
/** The scheduler lost the task (it restarted): announce again. */
export class UnknownTask extends Error {}

/**
 * Keep-alive connections for every peer-to-peer and scheduler request: a poll or a piece is one request on an
 * open socket. undici's request() rather than fetch(): a peer makes hundreds of small requests a second, and
 * fetch's web streams and per-request objects cost several times the CPU.
 */
const agent = new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 60_000 });

async function json<T>(url: string, method: 'POST' | 'DELETE', body: unknown, timeoutMs: number): Promise<T> {
  let statusCode: number;
  let text: string;
  try {
    const res = await request(url, {
      method,
      dispatcher: agent,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    statusCode = res.statusCode;
    text = await res.body.text();
  } catch (err) {
    throw new SchedulerDown(`scheduler unreachable: ${(err as Error).message}`);
  }
  if (statusCode === 404) throw new UnknownTask(text);
  if (statusCode < 200 || statusCode > 299) throw new SchedulerDown(`scheduler answered ${statusCode}: ${text.slice(0, 200)}`);
  try {
    return (text ? JSON.parse(text) : {}) as T;
  } catch {
    throw new SchedulerDown(`scheduler answered garbage: ${text.slice(0, 200)}`);
  }
}

export class SchedulerClient {
  constructor(
    /** Base URL, e.g. http://127.0.0.1:65003; none: the peer works alone (every blob from the upstream). */
    readonly base: string | undefined,
    private readonly timeoutMs = 3000,
  ) {}

  private url(p: string): string {
    if (!this.base) throw new SchedulerDown('no scheduler configured');
    return `${this.base.replace(/\/+$/, '')}/api/v1${p}`;
  }

  register(r: RegisterPeerRequest): Promise<unknown> {
    return json(this.url('/peers'), 'POST', r, this.timeoutMs);
  }

  announce(task: TaskId, r: AnnounceRequest): Promise<AnnounceResponse> {
    return json(this.url(`/tasks/${encodeURIComponent(task)}/announce`), 'POST', r, this.timeoutMs);
  }

  progress(task: TaskId, peerId: string, r: ProgressRequest): Promise<ProgressResponse> {
    return json(this.url(`/tasks/${encodeURIComponent(task)}/peers/${encodeURIComponent(peerId)}/progress`), 'POST', r, this.timeoutMs);
  }

  async leave(task: TaskId, peerId: string): Promise<void> {
    await json(this.url(`/tasks/${encodeURIComponent(task)}/peers/${encodeURIComponent(peerId)}`), 'DELETE', undefined, this.timeoutMs).catch(() => undefined);
  }
}

/** A parent answered 503: all its upload slots are busy. */
export class ParentBusy extends Error {}
/** A seed answered 503 for this piece only: it sent the piece already, other peers have it. */
export class PieceElsewhere extends Error {}

/** Another peer's piece API. */
export class ParentClient {
  constructor(readonly ref: PeerRef) {}

  private url(task: TaskId, p = ''): string {
    return `${this.ref.addr.replace(/\/+$/, '')}/p2p/v1/tasks/${encodeURIComponent(task)}${p}`;
  }

  /** Its pieces, waiting up to waitMs for more than `after` of them. */
  async pieces(task: TaskId, after: number, waitMs: number, signal?: AbortSignal): Promise<PeerTaskView | undefined> {
    const { statusCode, body } = await request(this.url(task, `/pieces?after=${after}&wait=${waitMs}`), { dispatcher: agent, signal, headersTimeout: waitMs + 5000, bodyTimeout: 5000 });
    if (statusCode === 404) {
      await body.dump();
      return undefined;
    }
    if (statusCode !== 200) {
      await body.dump();
      throw new Error(`parent ${this.ref.peerId} answered ${statusCode}`);
    }
    return (await body.json()) as PeerTaskView;
  }

  /**
   * Piece n's bytes and the digest the parent claims for them (checked by the caller against the scheduler's).
   * timeoutMs bounds the wait for the answer and any pause in the bytes.
   */
  async piece(task: TaskId, n: number, timeoutMs: number): Promise<{ data: Buffer; digest?: string }> {
    const { statusCode, headers, body } = await request(this.url(task, `/pieces/${n}`), { dispatcher: agent, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    if (statusCode === 503) {
      const err = (await body.json().catch(() => undefined)) as { error?: { code?: string } } | undefined;
      if (err?.error?.code === PIECE_ELSEWHERE) throw new PieceElsewhere(`parent ${this.ref.peerId} sent piece ${n} to others already`);
      throw new ParentBusy(`parent ${this.ref.peerId} is busy`);
    }
    if (statusCode !== 200) {
      await body.dump();
      throw new Error(`parent ${this.ref.peerId} answered ${statusCode} for piece ${n}`);
    }
    const digest = headers[PIECE_DIGEST_HEADER];
    return { data: Buffer.from(await body.arrayBuffer()), digest: typeof digest === 'string' ? digest : undefined };
  }
}
