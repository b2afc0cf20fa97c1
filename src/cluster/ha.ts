/**
 * A manager among several: it stands for election (election.ts), and while a standby it keeps its own engine
 * connections, follows etcd (nodes, placements, batches) into the same indexes the leader has, and passes client
 * requests to the leader (forward.ts). Becoming leader costs no reload: it records the node states it saw, and
 * resumes the batches etcd says are running. A graceful switch (SIGTERM, `sampan cluster switch`, or a higher
 * version standing) forwards new requests, lets those in flight finish (bounded), then resigns. A standby holds a
 * liveness link to the leader (leader-link.ts): when the leader's process is gone it revokes its lease, and the next
 * in line leads without waiting out the TTL.
 */
import http from 'node:http';
import os from 'node:os';
import { promises as fs } from 'node:fs';
import type { Duplex } from 'node:stream';
import { Counter } from 'prom-client';
import type { DockerApiServer } from '../docker-api/index.js';
import { errorMessage, isCode } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import type { TlsPaths } from '../lib/tls.js';
import { mapLimit, type Cluster } from './backend/index.js';
import { Election, type LeaderRecord, type ManagerIdentity, type Role } from './election.js';
import { Forwarder, LEADER_WAIT_MS } from './forward.js';
import { answerLink, LeaderLink, LINK_PATH, type LinkTarget } from './leader-link.js';
import type { NodeRegistry } from './nodes.js';
import { schedulingRequest } from './request.js';
import type { ClusterState } from './state.js';
import { MAX_BATCH_ERRORS, type BatchRecord, type ClusterStore, type NodeRecord, type Placement } from './store.js';

/** What each manager answers itself, whatever its role. */
const LOCAL = /^(\/v\d+\.\d+)?\/(_ping|metrics|sampan\/v1\/manager)$/;
/** How long a handing-over leader lets requests in flight finish, and a stopping manager its forwarded ones. */
const DRAIN_MS = 5000;
/** How long a manager joining a cluster with a leader waits for the engines before it stands. */
const READY_MS = 15_000;
/** Replicas of a resumed batch created at once. */
const RESUME_IN_FLIGHT = 16;

export interface HaOptions {
  etcd: string[];
  clusterName: string;
  /** Its first --listen: where the others forward. */
  api: string;
  /** All its unix:// listens: removed first when it stops, so new connections go to another manager. */
  listens: string[];
  version: string;
  leaseTtl: number;
  ownTls?: TlsPaths;
}

/** `GET /sampan/v1/manager`: each manager about itself. */
export interface ManagerStatus extends ManagerIdentity {
  role: Role;
  leader?: string;
  /** Engines connected to this manager. */
  joined: number;
  /** The leader a standby holds its liveness link to (leader-link.ts). */
  linkedTo?: string;
  candidates: ManagerIdentity[];
}

export class HighAvailability {
  readonly election: Election;
  private readonly forwarder: Forwarder;
  private readonly link: LeaderLink;
  private readonly fastFailovers = new Counter({
    name: 'sampan_cluster_fast_failovers_total', help: 'Leaders this manager deposed (revoked their lease) because their process was gone: the link to them ended and a reconnect was refused', registers: [],
  });
  private draining = false;
  /** Batches whose record says running, and their replicas' placements (id → placement): what a new leader resumes. */
  private readonly running = new Map<string, { rec: BatchRecord; replicas: Map<string, Placement> }>();
  private readonly batchOf = new Map<string, string>();
  private readonly resuming = new Set<string>();
  /** Told when this manager starts to lead, before the batches resume: what a standby had to reread. */
  onLead?: () => Promise<void>;

  constructor(
    private readonly o: HaOptions,
    private readonly store: ClusterStore,
    private readonly state: ClusterState,
    private readonly nodes: NodeRegistry,
    private readonly cluster: Cluster,
    private readonly api: DockerApiServer,
    private readonly log: Logger,
  ) {
    const me = { name: `${os.hostname()}-${process.pid}`, api: o.api, version: o.version };
    this.election = new Election(o.etcd, o.clusterName, me, o.leaseTtl, store, log, {
      onData: (k, v) => this.apply(k, v),
      onLead: () => this.lead(),
      onOutranked: () => void this.handover(true),
      onChange: () => this.link.follow(this.election.linkTarget()),
    });
    this.forwarder = new Forwarder((ms, unreachable) => this.election.leaderTarget(ms, unreachable, () => this.serving), log, o.ownTls);
    this.link = new LeaderLink((a) => this.forwarder.dial(a), (t) => void this.leaderGone(t), log);
    api.addMetrics((registry) => registry.registerMetric(this.fastFailovers));
    nodes.leading = () => this.election.role === 'leader';
    api.intercept = (req, res, upgrade) => this.intercept(req, res, upgrade);
  }

  get role(): Role {
    return this.election.role;
  }

  status(): ManagerStatus {
    return { ...this.election.me, role: this.role, leader: this.election.leader?.name, joined: this.nodes.joined, candidates: this.election.candidates, ...(this.link.linkedTo && { linkedTo: this.link.linkedTo }) };
  }

  private get serving(): boolean {
    return this.role === 'leader' && !this.draining;
  }

  private intercept(req: http.IncomingMessage, res: http.ServerResponse | undefined, upgrade?: { socket: Duplex; head: Buffer }): boolean {
    // a standby's liveness link: held by the leader itself, outside the requests a drain waits for
    if (res && req.url === LINK_PATH) {
      answerLink(res, this.serving, this.election.me.name);
      return true;
    }
    // with etcd out of reach nobody leads: each manager answers from its memory (marked stale) and refuses changes
    if (this.serving || !this.store.health.up || LOCAL.test(new URL(req.url ?? '/', 'http://m').pathname)) return false;
    this.forwarder.forward(req, res, upgrade, () => this.api.serve(req, res, upgrade));
    return true;
  }

  /** The cluster's state from etcd, then followed (in the indexes while a standby). */
  follow(): Promise<void> {
    return this.election.follow();
  }

  /**
   * Stands for election. Beside a living leader it stands once ready, every node that is up connected to it too
   * (bounded): a higher version that stands takes over, and must have the engines when it does.
   */
  async campaign(): Promise<void> {
    const l = this.election.leader;
    if (l && this.election.candidates.some((c) => c.name === l.name)) {
      const deadline = Date.now() + READY_MS;
      const ready = () => [...this.state.nodes.values()].every((n) => n.rec.state !== 'up' || this.nodes.connected(n));
      while (!ready() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    }
    return this.election.campaign();
  }

  private apply(key: string, value: string | undefined): void {
    const slash = key.indexOf('/');
    const kind = key.slice(0, slash);
    const id = key.slice(slash + 1);
    // the leader's indexes are ahead of etcd (it wrote what etcd echoes): only a standby takes them from the watch
    const standby = this.role === 'standby';
    if (kind === 'nodes' && value !== undefined && standby) {
      const rec = JSON.parse(value) as NodeRecord;
      const e = this.state.nodes.get(rec.id);
      // up or down is what this manager's own connection says
      const n = this.state.upsertNode(e ? { ...rec, state: e.rec.state } : rec, e?.lastSeen);
      if (e) this.state.nodeChanged(n);
    } else if (kind === 'placements') {
      const batch = this.batchOf.get(id);
      if (value === undefined) {
        if (standby) this.state.placed.delete(id);
        if (batch) this.running.get(batch)?.replicas.delete(id);
        this.batchOf.delete(id);
        return;
      }
      const p = JSON.parse(value) as Placement;
      if (standby) this.state.placed.set(id, p.node);
      const b = p.batch ? this.running.get(p.batch) : undefined;
      if (b) {
        b.replicas.set(id, p);
        this.batchOf.set(id, p.batch!);
      }
    } else if (kind === 'batches') {
      const rec = value === undefined ? undefined : (JSON.parse(value) as BatchRecord);
      const b = this.running.get(id);
      if (rec?.state === 'running') {
        if (b) b.rec = rec;
        else this.running.set(id, { rec, replicas: new Map() });
      } else if (b) {
        for (const r of b.replicas.keys()) this.batchOf.delete(r);
        this.running.delete(id);
      }
    }
  }

  /** The leader's process is gone (its link ended, a reconnect was refused): its lease goes now, not after its TTL. */
  private async leaderGone(t: LinkTarget): Promise<void> {
    const started = Date.now();
    if (!(await this.election.depose(t.name, t.lease))) return;
    this.fastFailovers.inc();
    this.log.warn({ leader: t.name, api: t.api, lease: t.lease, ms: Date.now() - started }, 'fast failover: revoked the dead leader\'s lease, the next in line leads');
  }

  /** The node states this manager saw as a standby reach etcd; the batches left running are taken up. */
  private lead(): void {
    void this.nodes.recordPending();
    void (this.onLead?.() ?? Promise.resolve()).catch((err: unknown) => this.log.error({ err: errorMessage(err) }, 'could not take up the cluster networks')).then(() => this.resumeAll());
  }

  private resumeAll(): void {
    for (const [id, b] of this.running) {
      if (this.resuming.has(id)) continue;
      this.resuming.add(id);
      void this.resume(b.rec, b.replicas)
        .catch((err: unknown) => this.log.warn({ batch: id, err: errorMessage(err) }, 'could not resume the batch'))
        .finally(() => this.resuming.delete(id));
    }
  }

  /**
   * A batch the last leader left running: each placed replica is created and started on its node under its id
   * (the engine's create is idempotent by id, and a replica that runs already counts), none elsewhere.
   */
  private async resume(rec: BatchRecord, replicas: Map<string, Placement>): Promise<void> {
    this.log.info({ batch: rec.id, prefix: rec.prefix, placed: replicas.size, replicas: rec.replicas }, 'resuming a running batch');
    const { body } = schedulingRequest(rec.config ?? { Image: rec.image });
    const errors: BatchRecord['errors'] = [];
    let running = 0;
    await mapLimit([...replicas], RESUME_IN_FLIGHT, async ([id, p]) => {
      if (this.role !== 'leader') return;
      if (this.state.entry(id)?.summary.State === 'running') {
        running++;
        return;
      }
      const node = this.state.nodes.get(p.node);
      try {
        if (!node) throw new Error(`node ${p.node} is unknown`);
        await this.cluster.command(node, 'create', { id, ...(p.name && { name: p.name }), body, start: true }).catch((err: unknown) => {
          if (!isCode(err, 'NOT_MODIFIED')) throw err; // started already
        });
        running++;
      } catch (err) {
        if (errors.length < MAX_BATCH_ERRORS) errors.push({ name: p.name ?? id, error: errorMessage(err) });
      }
    });
    if (this.role !== 'leader') return;
    const failed = rec.replicas - running;
    await this.store.putBatch({ ...rec, running, failed, errors: [...rec.errors, ...errors].slice(0, MAX_BATCH_ERRORS), state: failed ? 'failed' : 'done', updatedAt: new Date().toISOString() });
    this.log.info({ batch: rec.id, running, failed }, 'batch resumed');
  }

  /**
   * A graceful switch: new requests are forwarded (to the next leader once there is one), those in flight finish
   * (bounded; `others` of them, the caller's own, are not waited for), then it resigns (`stay`: back in line as a
   * standby) and the next candidate leads at once. Resolves with the new leader, if one showed in time.
   */
  async handover(stay: boolean, others = 0): Promise<LeaderRecord | undefined> {
    if (this.role !== 'leader' || this.draining) return this.nextLeader();
    this.draining = true;
    try {
      this.log.info('handing over: new requests go to the next leader');
      await this.api.idle(DRAIN_MS, others);
      const alone = !this.election.candidates.some((c) => c.name !== this.election.me.name);
      if (stay) await this.election.stepBack();
      else await this.election.resign();
      const next = alone ? undefined : await this.nextLeader();
      this.log.info({ leader: next?.name }, next ? 'handed over' : 'handed over: no other manager leads yet');
      return next;
    } finally {
      this.draining = false;
    }
  }

  private async nextLeader(): Promise<LeaderRecord | undefined> {
    const l = await this.election.leaderTarget(LEADER_WAIT_MS);
    return l === 'self' ? undefined : l;
  }

  /** SIGTERM: hands over if it leads; its sockets go first so new connections find another manager; forwarded requests finish (bounded). */
  async stop(): Promise<void> {
    this.link.close();
    if (this.role === 'leader') await this.handover(false);
    else await this.election.resign();
    for (const l of this.o.listens) await fs.rm(l.slice(7), { force: true });
    const deadline = Date.now() + DRAIN_MS;
    while (this.forwarder.inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await this.election.close();
  }
}
