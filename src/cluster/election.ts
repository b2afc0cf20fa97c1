/**
 * Manager election and fencing, etcd's own recipe: each ready manager holds a lease (a short TTL, kept alive) and
 * a key election/LEASE under it; the candidate whose key has the lowest create revision leads. The leader's writes
 * carry the compare "my key still exists with my create revision" (the store's guard): once its lease expired
 * (paused, cut off), its key is gone and etcd refuses whatever it still tries to write. The leader publishes itself
 * at `leader` ({name, api, version, since}), which standbys (and proxies) follow to forward requests.
 *
 * One watch on the cluster's whole prefix feeds both the election and the standby's copy of the state (`onData`),
 * in etcd's order: when a standby sees the old leader's key go, it has already seen everything that leader wrote.
 *
 * A crashed leader's lease would outlive it by its TTL: a standby that knows the process is gone (leader-link.ts)
 * revokes that lease (`depose`), and the next in line leads at once. The guard is what makes this safe: a leader
 * deposed while alive can write nothing from then on, and steps down as its key goes.
 *
 * Versions: a first candidate that sees a ready candidate of a higher version does not lead; it hands over (the
 * leader, gracefully) or steps back in line (a standby), so a lower version never leads while a higher one lives.
 */
import type { Etcd3, Lease, Namespace, Watcher } from 'etcd3';
import { errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { etcdClient, type ClusterStore, type Guard } from './store.js';

export type Role = 'leader' | 'standby';

/** A manager as it stands for election, and as the leader key shows it. */
export interface ManagerIdentity {
  name: string;
  /** Its Docker API (its first --listen): where the others forward. */
  api: string;
  version: string;
}

export interface LeaderRecord extends ManagerIdentity {
  since: string;
}

interface Candidate extends ManagerIdentity {
  key: string;
  rev: number;
}

/** Holds for no key: no key has a negative version. A standby writes nothing. */
const NEVER: Guard = ['leader', 'Version', '<', 0];
const ELECTION = 'election/';
const LEADER = 'leader';
/** How often a leader checks that its lease was renewed within its TTL (a paused one finds out as it resumes). */
const LEASE_CHECK_MS = 200;
const RETRY_MS = 500;

/** The lease an election key stands under: `election/LEASE-N`. */
export function leaseOf(key: string): string {
  return key.slice(ELECTION.length).split('-')[0]!;
}

/** Dotted numeric versions (1.10.0 > 1.9.2); anything after a `-` is ignored. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('-')[0]!.split('.').map(Number);
  const pb = b.split('-')[0]!.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] || 0) - (pb[i] || 0);
    if (d) return Math.sign(d);
  }
  return 0;
}

/**
 * Who leads, from the candidates: the first in line, unless a higher version waits (then nobody, until the first
 * hands over or steps back).
 */
export function firstInLine<C extends { rev: number; version: string }>(cands: Iterable<C>): { first?: C; outranked: boolean } {
  const sorted = [...cands].sort((a, b) => a.rev - b.rev);
  const first = sorted[0];
  return { first, outranked: !!first && sorted.some((c) => compareVersions(c.version, first.version) > 0) };
}

/**
 * The leader its key names while its candidacy stands (the key of a leader that died outlives it until another
 * leads), unless it is at `unreachable` (an address that refused a connection).
 */
export function standingLeader(l: LeaderRecord | undefined, cands: Iterable<{ name: string }>, unreachable?: string): LeaderRecord | undefined {
  return l && l.api !== unreachable && [...cands].some((c) => c.name === l.name) ? l : undefined;
}

/** `pick()` now, or as soon as it gives something once one of `waiters` is called, or undefined after `ms`. */
export function waitFor<T>(waiters: Set<() => void>, ms: number, pick: () => T | undefined): Promise<T | undefined> {
  const now = pick();
  if (now !== undefined || ms <= 0) return Promise.resolve(now);
  return new Promise((resolve) => {
    const done = (v: T | undefined) => {
      waiters.delete(check);
      clearTimeout(timer);
      resolve(v);
    };
    const check = () => {
      const v = pick();
      if (v !== undefined) done(v);
    };
    const timer = setTimeout(() => done(undefined), ms);
    waiters.add(check);
  });
}

export interface ElectionHooks {
  /** Every other key of the cluster's prefix, in etcd's order (value undefined: deleted); first the ones that exist. */
  onData(key: string, value: string | undefined): void;
  /** This manager just became leader (its leader key is written). */
  onLead(): void;
  /** The leader saw a ready candidate of a higher version: it should hand over. */
  onOutranked(): void;
  /** The candidates, the leader key or this manager's role changed (after each batch of the watch's events). */
  onChange?(): void;
}

export class Election {
  private readonly client: Etcd3;
  private readonly ns: Namespace;
  private readonly cands = new Map<string, Candidate>();
  private watcher?: Watcher;
  private lease?: Lease;
  private key?: string;
  private leaseId = '';
  /** Numbers this manager's keys: a new one stands before the old one goes. */
  private seq = 0;
  private rev = 0;
  private lastRenewed = 0;
  private lastFired = 0;
  private checker?: NodeJS.Timeout;
  private retrying?: NodeJS.Timeout;
  private stopped = false;
  private campaigning = false;
  private outrankedTold = false;
  private readonly waiters = new Set<() => void>();
  role: Role = 'standby';
  leader?: LeaderRecord;

  constructor(
    endpoints: string[],
    clusterName: string,
    readonly me: ManagerIdentity,
    private readonly ttlSeconds: number,
    private readonly store: ClusterStore,
    private readonly log: Logger,
    private readonly hooks: ElectionHooks,
  ) {
    // bounded calls: a campaign against an etcd that hangs fails and is tried again, it does not wait forever
    this.client = etcdClient(endpoints);
    this.ns = this.client.namespace(`/sampan/cluster/${clusterName}/`);
    // a refused write means this manager's key is gone: it is not the leader any more
    store.onRefused = () => this.stepDown('a write was refused: its election key is gone');
  }

  /** Reads the cluster's state once and follows it from there (before campaigning: a candidate is a ready one). */
  async follow(): Promise<void> {
    const r = await this.ns.getAll().prefix('').exec();
    this.apply(r.kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString(), rev: Number(kv.create_revision) })));
    this.watcher = await this.ns.watch().prefix('').startRevision(String(Number(r.header.revision) + 1)).create();
    this.watcher.on('data', (res) => {
      this.apply(res.events.map((ev) => ({ key: ev.kv.key.toString(), value: ev.type === 'Put' ? ev.kv.value.toString() : undefined, rev: Number(ev.kv.create_revision) })));
      this.decide();
    });
    this.watcher.on('error', (err) => this.log.warn({ err: errorMessage(err) }, 'etcd watch error'));
  }

  private apply(changes: Array<{ key: string; value: string | undefined; rev: number }>): void {
    for (const { key, value, rev } of changes) {
      if (key.startsWith(ELECTION)) {
        if (value === undefined) this.cands.delete(key);
        else this.cands.set(key, { ...(JSON.parse(value) as ManagerIdentity), key, rev });
      } else if (key === LEADER) this.leader = value === undefined ? undefined : (JSON.parse(value) as LeaderRecord);
      else this.hooks.onData(key, value);
    }
    this.wake();
  }

  /** Those waiting for a leader look again. */
  private wake(): void {
    for (const w of [...this.waiters]) w();
    this.hooks.onChange?.();
  }

  /** Stands for election: a lease kept alive, and its key in line. */
  async campaign(): Promise<void> {
    if (this.stopped || this.campaigning) return;
    this.campaigning = true;
    // from its first candidacy on, the manager writes only as the leader (its start, the join token, came before)
    this.store.guard = NEVER;
    const lease = this.ns.lease(this.ttlSeconds);
    try {
      lease.on('keepaliveFired', () => (this.lastFired = Date.now()));
      lease.on('keepaliveSucceeded', () => {
        this.lastRenewed = this.lastFired;
        // a lease that outlived a pause or an etcd restart (etcd renews every lease as it starts) still holds the key
        if (this.role === 'standby') this.decide();
      });
      this.leaseId = await lease.grant();
      this.lease = lease;
      // once granted: a failed grant or put is the catch's to retry
      lease.on('lost', (err) => {
        if (this.lease !== lease) return;
        this.log.warn({ err: errorMessage(err) }, 'election lease lost');
        this.stepDown('its lease was lost');
        this.lease = undefined;
        this.key = undefined;
        this.retry();
      });
      this.key = `${ELECTION}${this.leaseId}-${++this.seq}`;
      this.lastRenewed = Date.now();
      await this.enqueue();
      this.checker ??= setInterval(() => {
        if (this.role === 'leader' && Date.now() - this.lastRenewed > this.ttlSeconds * 1000) this.stepDown('its lease was not renewed within its TTL');
      }, LEASE_CHECK_MS);
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'could not stand for election: trying again');
      if (this.lease === lease) this.lease = undefined;
      lease.release();
      this.retry();
    } finally {
      this.campaigning = false;
    }
  }

  /** One campaign again, later (however many failures ask for it meanwhile). */
  private retry(): void {
    if (this.retrying || this.stopped) return;
    this.retrying = setTimeout(() => {
      this.retrying = undefined;
      void this.campaign();
    }, RETRY_MS);
  }

  /** Puts this manager's key (again): at the end of the line. */
  private async enqueue(): Promise<void> {
    const r = await this.lease!.put(this.key!).value(JSON.stringify(this.me)).exec();
    this.rev = Number(r.header.revision);
    this.outrankedTold = false;
    this.decide();
  }

  private decide(): void {
    if (this.stopped || !this.key) return;
    const mine = this.cands.get(this.key);
    if (!mine || mine.rev !== this.rev) {
      if (this.role === 'leader') this.stepDown('its election key is gone');
      return;
    }
    const { first, outranked } = firstInLine(this.cands.values());
    if (first !== mine) {
      if (this.role === 'leader') this.stepDown(`${first?.name} is first in line`);
      return;
    }
    if (!outranked) {
      if (this.role === 'standby') void this.lead();
    } else if (this.role === 'leader') {
      if (!this.outrankedTold) {
        this.outrankedTold = true;
        this.log.info('a ready manager of a higher version stands: handing over');
        this.hooks.onOutranked();
      }
    } else void this.stepBack().catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, 'could not step back in line'));
  }

  private async lead(): Promise<void> {
    this.role = 'leader';
    this.store.guard = [this.key!, 'Create', '==', this.rev];
    const rec: LeaderRecord = { ...this.me, since: new Date().toISOString() };
    try {
      await this.store.putLeader(rec);
    } catch (err) {
      this.stepDown(`could not publish itself as leader: ${errorMessage(err)}`);
      return;
    }
    if (this.role !== 'leader') return;
    this.log.info({ name: this.me.name, version: this.me.version }, 'elected leader');
    this.hooks.onLead();
    this.wake();
  }

  private stepDown(reason: string): void {
    if (this.role !== 'leader') return;
    this.role = 'standby';
    this.store.guard = NEVER;
    this.log.warn({ reason }, 'stepped down to standby');
    this.hooks.onChange?.();
  }

  /**
   * Back to the end of the line (a handover that stays a standby): the next candidate leads at once. The new key
   * stands before the old one goes, so that nobody sees this manager's version missing meanwhile.
   */
  async stepBack(): Promise<void> {
    if (!this.key || !this.lease) return;
    this.stepDown('handing over');
    const old = this.key;
    this.key = `${ELECTION}${this.leaseId}-${++this.seq}`;
    await this.enqueue();
    await this.ns.delete().key(old);
  }

  /** Gives up candidacy (its lease revoked, its key with it): the next candidate leads at once. */
  async resign(): Promise<void> {
    this.stopped = true;
    clearInterval(this.checker);
    clearTimeout(this.retrying);
    this.stepDown('resigning');
    const lease = this.lease;
    this.lease = undefined;
    await lease?.revoke().catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, 'could not revoke the election lease: it expires'));
  }

  /**
   * The leader to forward to, as its key names it and while it still stands, or 'self' once `servesHere` (this
   * manager became the leader meanwhile); waits up to `ms` for one, skipping `unreachable` (an address that refused
   * a connection).
   */
  async leaderTarget(ms: number, unreachable?: string, servesHere: () => boolean = () => false): Promise<LeaderRecord | 'self' | undefined> {
    return waitFor(this.waiters, ms, () => {
      if (servesHere()) return 'self';
      const l = standingLeader(this.leader, this.cands.values(), unreachable);
      return l?.name !== this.me.name ? l : undefined;
    });
  }

  /**
   * The standing leader other than this manager, with the lease its candidacy stands under (the lease id is its
   * election key's first part): what a standby links to, and what it revokes when that leader's process is gone.
   */
  linkTarget(): { name: string; api: string; lease: string } | undefined {
    if (this.role === 'leader' || this.stopped) return undefined;
    const l = standingLeader(this.leader, this.cands.values());
    if (!l || l.name === this.me.name) return undefined;
    const c = [...this.cands.values()].find((x) => x.name === l.name);
    return c && { name: l.name, api: l.api, lease: leaseOf(c.key) };
  }

  /**
   * Revokes the lease of a leader whose process is gone (its API refused a reconnect): its key goes at once and the
   * next in line leads, without waiting out the TTL. Only while it still stands under that lease as the leader: a
   * leader that handed over or was replaced meanwhile is left alone. A leader that was in fact alive loses its key
   * the same way: its writes are refused from that moment (fencing), and it steps down when it sees the key go.
   * True when this call revoked it.
   */
  async depose(name: string, lease: string): Promise<boolean> {
    const t = this.linkTarget();
    if (!t || t.name !== name || t.lease !== lease) return false;
    try {
      await this.ns.leaseClient.leaseRevoke({ ID: lease });
      return true;
    } catch (err) {
      // gone already (it expired, or another standby revoked it first)
      this.log.info({ leader: name, lease, err: errorMessage(err) }, 'could not revoke the dead leader\'s lease');
      return false;
    }
  }

  /** The candidates, first in line first. */
  get candidates(): ManagerIdentity[] {
    return [...this.cands.values()].sort((a, b) => a.rev - b.rev).map(({ name, api, version }) => ({ name, api, version }));
  }

  async close(): Promise<void> {
    if (!this.stopped) await this.resign();
    this.watcher?.cancel().catch(() => undefined);
    this.client.close();
  }
}
