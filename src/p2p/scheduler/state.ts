/**
 * The scheduler's state, in memory only: hosts (peers that registered or announced), tasks (one per blob)
 * and, per task, each peer's role, pieces, parents and blocked parents. Losing it is fine by design: peers
 * answered 404 announce again with what they hold, and the first to do so seeds the task again.
 */
import { invalid, notFound } from '../../lib/errors.js';
import { silentLogger, type Logger } from '../../lib/log.js';
import { pieceCount, type AnnounceRequest, type AnnounceResponse, type PeerRef, type ProgressRequest, type ProgressResponse, type RegisterPeerRequest, type TaskId, type TaskMeta, type TrafficView } from '../protocol.js';
import { chooseParents, type Candidate } from './parents.js';
import { PieceSet } from './pieceset.js';

export interface StateOptions {
  /** Parents per child (K). */
  parents: number;
  /** Children a parent takes per upload slot. */
  childrenPerSlot: number;
  /** The task's sources got no new piece for this long: it is stalled. */
  seedStallMs: number;
  /** Children per task that may be told to go to the upstream when it stalls. */
  backToSourceLimit: number;
  /** How long a parent a child reported corrupt or gone stays off that child's list. */
  blockMs: number;
  /** An unfinished peer of a task that reported nothing for this long is dropped; so is an idle host. */
  peerIdleMs: number;
  /** A task nobody touched for this long is forgotten. */
  taskIdleMs: number;
  now?: () => number;
  log?: Logger;
}

export type FailReason = NonNullable<ProgressRequest['failed']>[number]['reason'];
export const FAIL_REASONS: FailReason[] = ['digest', 'timeout', 'gone', 'busy'];

/** Told when a peer of a task finishes or drops out (preheat jobs follow their seeds this way). */
export interface StateListener {
  peerFinished(taskId: TaskId, peerId: string): void;
  peerFailed(taskId: TaskId, peerId: string, why: string): void;
}

export interface Host {
  peerId: string;
  addr: string;
  zone?: string;
  uploadSlots: number;
  /** Child links to this host, over all tasks: its upload load. */
  children: number;
  lastSeen: number;
  /** A preheat could not reach it since it was last heard from. */
  unreachableAt?: number;
  tasks: Set<TaskId>;
}

interface TaskPeer {
  host: Host;
  role: 'seed' | 'child';
  pieces: PieceSet;
  finished: boolean;
  /** It gave up on the P2P path. */
  failed: boolean;
  /** Told it may go to the upstream (a stalled seed). */
  backToSource: boolean;
  /** Its current parents (each counted in that host's children). */
  parents: string[];
  /** Parent peerId -> until when this child must not get it. */
  blocked: Map<string, number>;
  /** Children that reported it gone: two of them and it leaves the task. */
  goneBy: Set<string>;
  joinedAt: number;
  lastProgress: number;
}

interface Task {
  id: TaskId;
  url: string;
  meta?: TaskMeta;
  peers: Map<string, TaskPeer>;
  createdAt: number;
  lastActive: number;
  /** Last time a source (the seed, or a peer sent to the upstream) got a new piece, or became one. */
  lastSourcePiece: number;
  /** How many children were told to go to the upstream. */
  backToSourceGrants: number;
}

/** Children that must say a parent is gone before it is dropped from the task for everyone. */
const GONE_QUORUM = 2;

export interface TaskView {
  taskId: TaskId;
  url: string;
  meta?: { size: number; pieceSize: number; pieces: number; digestsKnown: number };
  createdAt: string;
  stalled: boolean;
  backToSourceGrants: number;
  peers: Array<{
    peerId: string;
    addr: string;
    zone?: string;
    role: 'seed' | 'child';
    pieces: number;
    ranges: string;
    finished: boolean;
    failed: boolean;
    backToSource: boolean;
    uploadSlots: number;
    /** Children of this peer in this task, and over all tasks. */
    children: number;
    childrenAllTasks: number;
    parents: string[];
    blocked: string[];
    lastProgress: string;
  }>;
}

export class SchedulerState {
  readonly hosts = new Map<string, Host>();
  private readonly tasks = new Map<TaskId, Task>();
  private readonly now: () => number;
  private readonly log: Logger;
  private listener?: StateListener;
  /** Plain counters, read by /metrics. */
  readonly stats = {
    announces: { seed: 0, child: 0 },
    parentsAssigned: 0,
    backToSource: 0,
    failedPieces: Object.fromEntries(FAIL_REASONS.map((r) => [r, 0])) as Record<FailReason, number>,
  };

  constructor(private readonly o: StateOptions) {
    this.now = o.now ?? Date.now;
    this.log = o.log ?? silentLogger;
  }

  setListener(l: StateListener): void {
    this.listener = l;
  }

  get taskCount(): number {
    return this.tasks.size;
  }

  /** Peers in tasks (one peer in two tasks counts twice). */
  get taskPeerCount(): number {
    let n = 0;
    for (const t of this.tasks.values()) n += t.peers.size;
    return n;
  }

  // ---------- hosts ----------

  registerPeer(r: RegisterPeerRequest): Host {
    return this.upsertHost(r, r.uploadSlots);
  }

  private upsertHost(r: PeerRef, uploadSlots: number): Host {
    let h = this.hosts.get(r.peerId);
    if (!h) {
      h = { peerId: r.peerId, addr: r.addr, zone: r.zone, uploadSlots, children: 0, lastSeen: this.now(), tasks: new Set() };
      this.hosts.set(r.peerId, h);
      this.log.info({ peerId: r.peerId, addr: r.addr, zone: r.zone ?? null, uploadSlots }, 'peer registered');
    }
    h.addr = r.addr;
    h.zone = r.zone;
    h.uploadSlots = uploadSlots;
    h.lastSeen = this.now();
    return h;
  }

  /** Hosts heard from lately (and reachable since), in a zone or all of them, in a stable order. */
  liveHosts(zone?: string): Host[] {
    const since = this.now() - this.o.peerIdleMs;
    return [...this.hosts.values()]
      .filter((h) => h.lastSeen >= since && !(h.unreachableAt !== undefined && h.unreachableAt >= h.lastSeen) && (zone === undefined || h.zone === zone))
      .sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0));
  }

  markUnreachable(peerId: string): void {
    const h = this.hosts.get(peerId);
    if (h) h.unreachableAt = this.now();
  }

  /** Whether this host holds the whole blob, as far as the scheduler knows. */
  hasFinished(taskId: TaskId, peerId: string): boolean {
    return this.tasks.get(taskId)?.peers.get(peerId)?.finished === true;
  }

  // ---------- tasks ----------

  announce(taskId: TaskId, r: AnnounceRequest): AnnounceResponse {
    this.checkPieces(this.tasks.get(taskId), r.meta, r.pieces);
    const now = this.now();
    const host = this.upsertHost(r, r.uploadSlots);
    let task = this.tasks.get(taskId);
    if (!task) {
      task = { id: taskId, url: r.url, peers: new Map(), createdAt: now, lastActive: now, lastSourcePiece: now, backToSourceGrants: 0 };
      this.tasks.set(taskId, task);
    }
    task.lastActive = now;
    if (r.meta) this.takeMeta(task, r.meta, r.peerId);
    let p = task.peers.get(r.peerId);
    if (p) {
      // announced again (its scheduler session or its own process restarted): start its links afresh
      this.setParents(task, p, []);
      p.failed = false;
      p.finished = false;
      p.pieces = new PieceSet();
      p.lastProgress = now;
    } else {
      // the seed: the first peer of a task, or the first after every source left without finishing
      const seed = !this.hasSource(task);
      p = { host, role: seed ? 'seed' : 'child', pieces: new PieceSet(), finished: false, failed: false, backToSource: false, parents: [], blocked: new Map(), goneBy: new Set(), joinedAt: now, lastProgress: now };
      task.peers.set(r.peerId, p);
      host.tasks.add(taskId);
      if (seed) {
        task.lastSourcePiece = now;
        this.log.info({ task: taskId, peerId: r.peerId, zone: r.zone ?? null, held: r.pieces?.length ?? 0, finished: !!r.finished }, 'seed chosen');
      }
    }
    for (const n of r.pieces ?? []) p.pieces.add(n);
    if (p.pieces.size > 0 && this.isSource(p)) task.lastSourcePiece = now;
    if (r.finished || this.complete(task, p)) this.finish(task, p);
    this.stats.announces[p.role]++;
    const parents = this.assign(task, p);
    this.log.debug({ task: taskId, peerId: r.peerId, role: p.role, held: p.pieces.size, finished: p.finished, parents: parents.map((x) => x.peerId) }, 'announce');
    return { role: p.role, parents, ...(task.meta ? { meta: task.meta } : {}) };
  }

  progress(taskId: TaskId, peerId: string, r: ProgressRequest): ProgressResponse {
    const task = this.tasks.get(taskId);
    if (!task) throw notFound(`unknown task ${taskId}: announce it`);
    const p = task.peers.get(peerId);
    if (!p) throw notFound(`peer ${peerId} is not in task ${taskId}: announce it`);
    this.checkPieces(task, r.meta, r.pieces);
    const now = this.now();
    task.lastActive = now;
    p.lastProgress = now;
    p.host.lastSeen = now;
    if (r.meta) this.takeMeta(task, r.meta, peerId);
    let gained = 0;
    for (const n of r.pieces ?? []) if (p.pieces.add(n)) gained++;
    if (gained > 0 && this.isSource(p)) task.lastSourcePiece = now;
    for (const f of r.failed ?? []) this.pieceFailed(task, p, f.parent, f.reason);
    if (r.finished || (!p.finished && this.complete(task, p))) {
      if (!p.finished) this.finish(task, p);
    } else if (r.failedTask && !p.failed) {
      p.failed = true;
      this.setParents(task, p, []);
      this.log.info({ task: taskId, peerId }, 'peer gave up on the P2P path');
      this.listener?.peerFailed(taskId, peerId, 'gave up on the P2P path');
    }
    const res: ProgressResponse = { parents: p.failed ? [] : this.assign(task, p) };
    if (task.meta && !(task.meta.pieceDigests.length <= (r.digestsKnown ?? -1))) res.meta = task.meta;
    if (this.mayGoToSource(task, p)) res.backToSource = true;
    return res;
  }

  /** DELETE: the peer left the task (it evicted the blob, or stopped). */
  leave(taskId: TaskId, peerId: string): void {
    const task = this.tasks.get(taskId);
    if (!task) throw notFound(`unknown task ${taskId}`);
    const p = task.peers.get(peerId);
    if (!p) throw notFound(`peer ${peerId} is not in task ${taskId}`);
    this.remove(task, peerId, 'left the task');
  }

  /** Each task's bytes by where they came from (protocol.ts, TrafficView): O(tasks × their peers). */
  traffic(): TrafficView {
    const tasks: TrafficView['tasks'] = [];
    for (const t of this.tasks.values()) {
      const size = t.meta?.size ?? 0;
      const piece = t.meta?.pieceSize ?? 0;
      let fromPeers = 0;
      let fromSource = 0;
      for (const p of t.peers.values()) {
        const bytes = Math.min(size, p.pieces.size * piece);
        if (p.role === 'seed' || p.backToSource) fromSource += bytes;
        else fromPeers += bytes;
      }
      tasks.push({ taskId: t.id, url: t.url, fromPeers, fromSource });
    }
    return { tasks };
  }

  view(taskId: TaskId): TaskView {
    const task = this.tasks.get(taskId);
    if (!task) throw notFound(`unknown task ${taskId}`);
    const now = this.now();
    const local = new Map<string, number>();
    for (const p of task.peers.values()) for (const id of p.parents) local.set(id, (local.get(id) ?? 0) + 1);
    const total = this.total(task);
    return {
      taskId: task.id,
      url: task.url,
      ...(task.meta && total !== undefined ? { meta: { size: task.meta.size, pieceSize: task.meta.pieceSize, pieces: total, digestsKnown: task.meta.pieceDigests.length } } : {}),
      createdAt: new Date(task.createdAt).toISOString(),
      stalled: this.stalled(task),
      backToSourceGrants: task.backToSourceGrants,
      peers: [...task.peers.entries()].map(([id, p]) => ({
        peerId: id,
        addr: p.host.addr,
        ...(p.host.zone !== undefined ? { zone: p.host.zone } : {}),
        role: p.role,
        pieces: p.pieces.size,
        ranges: p.pieces.ranges(),
        finished: p.finished,
        failed: p.failed,
        backToSource: p.backToSource,
        uploadSlots: p.host.uploadSlots,
        children: local.get(id) ?? 0,
        childrenAllTasks: p.host.children,
        parents: [...p.parents],
        blocked: [...p.blocked.entries()].filter(([, until]) => until > now).map(([b]) => b),
        lastProgress: new Date(p.lastProgress).toISOString(),
      })),
    };
  }

  /** Forget what went quiet: unfinished peers that stopped reporting, idle tasks and hosts, expired blocks. */
  sweep(): void {
    const now = this.now();
    for (const task of [...this.tasks.values()]) {
      if (now - task.lastActive >= this.o.taskIdleMs) {
        for (const id of [...task.peers.keys()]) this.remove(task, id, 'task idle');
        continue;
      }
      for (const [id, p] of [...task.peers]) {
        // a finished peer serves without reporting: it stays until it leaves or its children find it gone
        if (!p.finished && now - p.lastProgress >= this.o.peerIdleMs) this.remove(task, id, 'no progress report');
        else for (const [b, until] of p.blocked) if (until <= now) p.blocked.delete(b);
      }
    }
    for (const [id, h] of this.hosts) if (h.tasks.size === 0 && now - h.lastSeen >= this.o.peerIdleMs) this.hosts.delete(id);
  }

  // ---------- internals ----------

  private total(task: Task): number | undefined {
    return task.meta ? pieceCount(task.meta.size, task.meta.pieceSize) : undefined;
  }

  /** Refuse pieces beyond the blob (by the task's meta, or the one given with them) before anything changes. */
  private checkPieces(task: Task | undefined, meta: TaskMeta | undefined, pieces: number[] | undefined): void {
    const total = task?.meta ? this.total(task) : meta ? pieceCount(meta.size, meta.pieceSize) : undefined;
    if (total === undefined || !pieces) return;
    for (const n of pieces) if (n >= total) throw invalid(`piece ${n} out of range: the blob has ${total} pieces`);
  }

  private complete(task: Task, p: TaskPeer): boolean {
    const total = this.total(task);
    return total !== undefined && total > 0 && p.pieces.size >= total;
  }

  /**
   * The task's meta: the first one given, then longer digest lists that agree with it (the seed's reports
   * as its pieces come in, or any peer's after a restart). A meta that contradicts it is ignored.
   */
  private takeMeta(task: Task, m: TaskMeta, from: string): void {
    const total = pieceCount(m.size, m.pieceSize);
    if (m.pieceDigests.length > total) throw invalid(`meta lists ${m.pieceDigests.length} piece digests for ${total} pieces`);
    const cur = task.meta;
    if (!cur) {
      // pieces reported before anyone knew the size: a bogus one is dropped, not held against the meta's sender
      for (const p of task.peers.values()) {
        const held = p.pieces.toArray();
        if (held.length > 0 && held[held.length - 1]! >= total) {
          this.log.warn({ task: task.id, peerId: p.host.peerId, pieces: total }, 'pieces beyond the blob dropped');
          p.pieces = PieceSet.of(held.filter((n) => n < total));
        }
      }
      task.meta = { size: m.size, pieceSize: m.pieceSize, pieceDigests: [...m.pieceDigests] };
      return;
    }
    const agrees = cur.size === m.size && cur.pieceSize === m.pieceSize && cur.pieceDigests.every((d, i) => i >= m.pieceDigests.length || m.pieceDigests[i] === d);
    if (!agrees) {
      this.log.warn({ task: task.id, peerId: from, size: m.size, pieceSize: m.pieceSize }, 'meta contradicts the task\'s: ignored');
      return;
    }
    if (m.pieceDigests.length > cur.pieceDigests.length) task.meta = { ...cur, pieceDigests: [...m.pieceDigests] };
  }

  private isSource(p: TaskPeer): boolean {
    return (p.role === 'seed' || p.backToSource) && !p.failed;
  }

  /** Someone can still bring the blob in: a finished peer, or a source that did not give up. */
  private hasSource(task: Task): boolean {
    for (const p of task.peers.values()) if (p.finished || this.isSource(p)) return true;
    return false;
  }

  private stalled(task: Task): boolean {
    let source = false;
    for (const p of task.peers.values()) {
      if (p.finished) return false;
      if (this.isSource(p)) source = true;
    }
    return !source || this.now() - task.lastSourcePiece >= this.o.seedStallMs;
  }

  /** A stalled task: this child may fetch from the upstream, if it already may or a grant is left. */
  private mayGoToSource(task: Task, p: TaskPeer): boolean {
    if (p.finished || p.failed || p.role === 'seed') return false;
    if (p.backToSource) return true;
    if (task.backToSourceGrants >= this.o.backToSourceLimit || !this.stalled(task)) return false;
    p.backToSource = true;
    task.backToSourceGrants++;
    // a new source: it gets its own stall window before another child is sent
    task.lastSourcePiece = this.now();
    this.stats.backToSource++;
    this.log.info({ task: task.id, peerId: p.host.peerId, grants: task.backToSourceGrants, limit: this.o.backToSourceLimit }, 'seed stalled: child sent to the upstream');
    return true;
  }

  private finish(task: Task, p: TaskPeer): void {
    p.finished = true;
    p.failed = false;
    const total = this.total(task);
    if (total !== undefined) p.pieces = PieceSet.full(total);
    this.setParents(task, p, []);
    if (this.isSource(p)) task.lastSourcePiece = this.now();
    this.log.debug({ task: task.id, peerId: p.host.peerId, role: p.role }, 'peer finished');
    this.listener?.peerFinished(task.id, p.host.peerId);
  }

  private pieceFailed(task: Task, child: TaskPeer, parentId: string, reason: FailReason): void {
    this.stats.failedPieces[reason]++;
    if (reason === 'busy' || parentId === child.host.peerId) return;
    // corrupt, gone or too slow: off this child's list for a while (busy is only load, the policy sees it)
    child.blocked.set(parentId, this.now() + this.o.blockMs);
    if (child.parents.includes(parentId)) this.setParents(task, child, child.parents.filter((x) => x !== parentId));
    const parent = task.peers.get(parentId);
    if (reason === 'gone' && parent) {
      parent.goneBy.add(child.host.peerId);
      if (parent.goneBy.size >= GONE_QUORUM) this.remove(task, parentId, `${parent.goneBy.size} children found it gone`);
    }
  }

  /** Run the policy for one peer and record the links it makes. */
  private assign(task: Task, p: TaskPeer): PeerRef[] {
    if (p.finished || p.failed) {
      this.setParents(task, p, []);
      return [];
    }
    const now = this.now();
    const candidates: Candidate[] = [];
    for (const [id, q] of task.peers) {
      if (q === p || q.failed) continue;
      candidates.push({
        peerId: id,
        zone: q.host.zone,
        finished: q.finished,
        pieces: q.pieces,
        uploadSlots: q.host.uploadSlots,
        // its load as others see it: this child's own link does not count against it
        children: q.host.children - (p.parents.includes(id) ? 1 : 0),
      });
    }
    const chosen = chooseParents(
      { peerId: p.host.peerId, zone: p.host.zone, pieces: p.pieces, finished: p.finished, seed: p.role === 'seed' },
      candidates,
      { max: this.o.parents, childrenPerSlot: this.o.childrenPerSlot, total: this.total(task), blocked: (id) => (p.blocked.get(id) ?? 0) > now },
    );
    this.setParents(task, p, chosen.map((c) => c.peerId));
    return chosen.map((c) => {
      const h = task.peers.get(c.peerId)!.host;
      return { peerId: h.peerId, addr: h.addr, ...(h.zone !== undefined ? { zone: h.zone } : {}) };
    });
  }

  private setParents(task: Task, p: TaskPeer, next: string[]): void {
    for (const id of p.parents) if (!next.includes(id)) this.unlink(task, id);
    for (const id of next) {
      if (p.parents.includes(id)) continue;
      const h = task.peers.get(id)?.host;
      if (h) h.children++;
      this.stats.parentsAssigned++;
    }
    p.parents = next;
  }

  private unlink(task: Task, parentId: string): void {
    const h = task.peers.get(parentId)?.host;
    if (h && h.children > 0) h.children--;
  }

  private remove(task: Task, peerId: string, why: string): void {
    const p = task.peers.get(peerId);
    if (!p) return;
    this.setParents(task, p, []);
    // its children lose it as a parent; their next report gets them another
    for (const q of task.peers.values()) {
      if (q !== p && q.parents.includes(peerId)) {
        this.unlink(task, peerId);
        q.parents = q.parents.filter((x) => x !== peerId);
      }
    }
    task.peers.delete(peerId);
    p.host.tasks.delete(task.id);
    if (p.role === 'seed' && !p.finished) this.log.info({ task: task.id, peerId, why }, 'seed left before finishing');
    else this.log.debug({ task: task.id, peerId, why }, 'peer left the task');
    if (!p.finished) this.listener?.peerFailed(task.id, peerId, why);
    if (task.peers.size === 0) this.tasks.delete(task.id);
  }
}
