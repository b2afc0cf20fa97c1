/** HTTP clients of a peer: the scheduler's API and other peers' piece API (src/p2p/protocol.ts). */
import type { AnnounceRequest, AnnounceResponse, PeerRef, PeerTaskView, ProgressRequest, ProgressResponse, RegisterPeerRequest, TaskId } from '../protocol.js';
import { PIECE_DIGEST_HEADER } from '../protocol.js';

/** The scheduler cannot be reached (or answers garbage): the peer falls back to the upstream. */
export class SchedulerDown extends Error {}
/** The scheduler lost the task (it restarted): announce again. */
export class UnknownTask extends Error {}

async function json<T>(url: string, init: RequestInit, timeoutMs: number): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, headers: { 'content-type': 'application/json', ...(init.headers ?? {}) }, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new SchedulerDown(`scheduler unreachable: ${(err as Error).message}`);
  }
  const text = await res.text();
  if (res.status === 404) throw new UnknownTask(text);
  if (!res.ok) throw new SchedulerDown(`scheduler answered ${res.status}: ${text.slice(0, 200)}`);
  return (text ? JSON.parse(text) : {}) as T;
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
    return json(this.url('/peers'), { method: 'POST', body: JSON.stringify(r) }, this.timeoutMs);
  }

  announce(task: TaskId, r: AnnounceRequest): Promise<AnnounceResponse> {
    return json(this.url(`/tasks/${encodeURIComponent(task)}/announce`), { method: 'POST', body: JSON.stringify(r) }, this.timeoutMs);
  }

  progress(task: TaskId, peerId: string, r: ProgressRequest): Promise<ProgressResponse> {
    return json(this.url(`/tasks/${encodeURIComponent(task)}/peers/${encodeURIComponent(peerId)}/progress`), { method: 'POST', body: JSON.stringify(r) }, this.timeoutMs);
  }

  async leave(task: TaskId, peerId: string): Promise<void> {
    await json(this.url(`/tasks/${encodeURIComponent(task)}/peers/${encodeURIComponent(peerId)}`), { method: 'DELETE' }, this.timeoutMs).catch(() => undefined);
  }
}

/** A parent answered 503: all its upload slots are busy. */
export class ParentBusy extends Error {}

/** Another peer's piece API. */
export class ParentClient {
  constructor(readonly ref: PeerRef) {}

  private url(task: TaskId, p = ''): string {
    return `${this.ref.addr.replace(/\/+$/, '')}/p2p/v1/tasks/${encodeURIComponent(task)}${p}`;
  }

  /** Its pieces, waiting up to waitMs for more than `after` of them. */
  async pieces(task: TaskId, after: number, waitMs: number, signal?: AbortSignal): Promise<PeerTaskView | undefined> {
    const res = await fetch(this.url(task, `/pieces?after=${after}&wait=${waitMs}`), { signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(waitMs + 5000)]) : AbortSignal.timeout(waitMs + 5000) });
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    if (!res.ok) throw new Error(`parent ${this.ref.peerId} answered ${res.status}`);
    return (await res.json()) as PeerTaskView;
  }

  /** Piece n's bytes and the digest the parent claims for them (checked by the caller against the scheduler's). */
  async piece(task: TaskId, n: number, timeoutMs: number): Promise<{ data: Buffer; digest?: string }> {
    const res = await fetch(this.url(task, `/pieces/${n}`), { signal: AbortSignal.timeout(timeoutMs) });
    if (res.status === 503) {
      await res.body?.cancel();
      throw new ParentBusy(`parent ${this.ref.peerId} is busy`);
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`parent ${this.ref.peerId} answered ${res.status} for piece ${n}`);
    }
    return { data: Buffer.from(await res.arrayBuffer()), digest: res.headers.get(PIECE_DIGEST_HEADER) ?? undefined };
  }
}
