/**
 * The cluster's durable state in etcd, under /sampan/cluster/<name>/: nodes (state transitions, not heartbeats),
 * placements (which node owns which container), batches, and the join token's hash. Every write is an etcd
 * transaction made in `write`, behind a guard compare that stands for "this manager may write": always true while
 * there is one manager; the leader's fencing compare once there are several. Writes that arrive together share
 * transactions (at most MAX_TXN_OPS operations each, etcd's default limit), so thousands of creates a second cost
 * tens of transactions, not thousands. A second manager reads the same keys.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Etcd3, Range, type Namespace } from 'etcd3';
import { unavailable, errorMessage } from '../lib/errors.js';
import { healthy } from './etcd.js';
import { StoreHealth, UNREACHABLE } from './store-health.js';

export type NodeState = 'up' | 'down';
/** `drain`: the node keeps its containers and takes no new placements. */
export type Availability = 'active' | 'drain';

export interface NodeRecord {
  id: string;
  name: string;
  labels: Record<string, string>;
  api: string;
  addr: string;
  capacity: { ncpu: number; memTotal: number };
  version: string;
  joinedAt: string;
  state: NodeState;
  /** Set by `sampan node update`; absent in records written before it existed: active. */
  availability?: Availability;
  /**
   * `sampan node update`'s label changes (null: removed), applied over the labels the engine joins with, so they
   * survive its rejoins; `labels` is the result, what constraints see.
   */
  labelEdits?: Record<string, string | null>;
}

export interface Placement {
  node: string;
  /** Absent when the engine names the container. */
  name?: string;
  batch?: string;
  /** Its address on a cluster network (network id), also under the address's own key. */
  network?: string;
  ip?: string;
}

/** A block of a cluster network leased by a node (etcd key blocks/NETWORK/START). */
export interface BlockRecord {
  node: string;
  cidr: string;
}

export interface BatchReplica {
  name: string;
  node?: string;
  id?: string;
  error?: string;
}

/** A batch as etcd keeps it: counts, updated while it runs; each replica's node and id are its placement. */
export interface BatchRecord {
  id: string;
  prefix: string;
  replicas: number;
  image: string;
  state: 'running' | 'done' | 'failed';
  createdAt: string;
  updatedAt: string;
  running: number;
  failed: number;
  /** The first failures (at most MAX_BATCH_ERRORS), each with its reason. */
  errors: Array<{ name: string; error: string }>;
  /** The replicas' container config: a new leader resumes a running batch with it. */
  config?: Record<string, unknown>;
}
export const MAX_BATCH_ERRORS = 100;

export type Op = { put: string; value: unknown } | { del: string } | { delPrefix: string };

/** A compare every write carries: [key, target, comparator, value]. */
export type Guard = [string, 'Version' | 'Value' | 'Create' | 'Mod', '==' | '!=' | '>' | '<', string | number];
/** Holds for any key: a missing key's version is 0. */
const ALWAYS: Guard = ['guard', 'Version', '>', -1];
/** etcd's --max-txn-ops default. */
export const MAX_TXN_OPS = 128;
/** Keys per read of a prefix. */
const READ_PAGE = 5000;
/** Transactions in flight at once; the rest of the writes queue and share the next ones. */
const TXN_IN_FLIGHT = 8;

interface Queued {
  ops: Op[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

function chunks<T>(a: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < a.length; i += size) out.push(a.slice(i, i + size));
  return out;
}

export const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');
export const newToken = (): string => `SMPTKN-${randomBytes(24).toString('hex')}`;

/**
 * Bounds every etcd call: an etcd that hangs (stopped, cut off) fails a call instead of holding the request that
 * made it. etcd3 retries a timed-out call up to 3 times, then fails fast for a while (its circuit breaker).
 */
const CALL_TIMEOUT_MS = 3000;
/** How long the probe waits for a member's /health. */
const PROBE_TIMEOUT_MS = 1000;

/** An etcd client whose calls (not its streams: watches, keepalives) are bounded. */
export const etcdClient = (endpoints: string[]): Etcd3 => new Etcd3({ hosts: endpoints, dialTimeout: 3000, defaultCallOptions: (c) => (c.isStream ? {} : { deadline: Date.now() + CALL_TIMEOUT_MS }) });

export class ClusterStore {
  private readonly ns: Namespace;
  guard: Guard = ALWAYS;
  /** Whether etcd answers, from every read, write and probe. */
  readonly health = new StoreHealth();
  private tokenHash?: string;
  /** Told each transaction's duration in seconds (the manager's metrics). */
  onWrite?: (seconds: number) => void;
  /** Told when etcd refused a write for its guard (the election: this manager is not the leader any more). */
  onRefused?: () => void;

  constructor(
    private readonly client: Etcd3,
    readonly clusterName: string,
    private readonly endpoints: string[] = [],
  ) {
    this.ns = client.namespace(`/sampan/cluster/${clusterName}/`);
  }

  static connect(endpoints: string[], clusterName: string): ClusterStore {
    return new ClusterStore(etcdClient(endpoints), clusterName, endpoints);
  }

  close(): void {
    this.client.close();
  }

  private readonly queue: Queued[] = [];
  private inFlight = 0;
  private guardedInFlight = 0;
  private readonly guardedWaiting: Array<() => void> = [];
  private pumping = false;

  /**
   * The one way state is written: `ops` (at most MAX_TXN_OPS) land in one transaction under the guard, maybe with
   * other callers' ops; a refused guard or an unreachable etcd fails every caller of that transaction with a 503.
   */
  write(ops: Op[]): Promise<void> {
    if (!ops.length) return Promise.resolve();
    if (ops.length > MAX_TXN_OPS) return Promise.all(chunks(ops, MAX_TXN_OPS).map((c) => this.write(c))).then(() => undefined);
    // its outcome tells `health` whether etcd answers
    return this.health.track(new Promise((resolve, reject) => {
      this.queue.push({ ops, resolve, reject });
      // writes made in the same tick share transactions
      if (!this.pumping) {
        this.pumping = true;
        queueMicrotask(() => {
          this.pumping = false;
          this.pump();
        });
      }
    }));
  }

  private pump(): void {
    while (this.inFlight < TXN_IN_FLIGHT && this.queue.length) {
      const take: Queued[] = [];
      let n = 0;
      while (this.queue.length && n + this.queue[0]!.ops.length <= MAX_TXN_OPS) {
        const q = this.queue.shift()!;
        take.push(q);
        n += q.ops.length;
      }
      this.inFlight++;
      void this.commit(take.flatMap((q) => q.ops)).then(
        () => take.forEach((q) => q.resolve()),
        (err: unknown) => take.forEach((q) => q.reject(err)),
      ).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async commit(ops: Op[]): Promise<void> {
    if (!(await this.txn([], lastPerKey(ops)))) this.refused();
  }

  /** One transaction: the guard, `absent` keys (each must not exist), then `ops`; false when a compare failed. */
  private async txn(absent: string[], ops: Op[]): Promise<boolean> {
    const [key, target, cmp, value] = this.guard;
    const t0 = process.hrtime.bigint();
    try {
      let t = this.ns.if(key, target, cmp, value);
      for (const k of absent) t = t.and(k, 'Version', '==', 0);
      const r = await t.then(...ops.map((o) => ('put' in o ? this.ns.put(o.put).value(JSON.stringify(o.value)) : 'del' in o ? this.ns.delete().key(o.del) : this.ns.delete().prefix(o.delPrefix)))).commit();
      return r.succeeded;
    } catch (err) {
      throw unavailable(`${UNREACHABLE}: ${errorMessage(err)}`);
    } finally {
      this.onWrite?.(Number(process.hrtime.bigint() - t0) / 1e9);
    }
  }

  /**
   * Writes that hold only if `absent` keys do not exist (an address, a block: two managers racing cannot both get
   * one): a transaction of their own, never shared with other callers' writes, whose failure would fail them too.
   * False when one of those keys exists; a refused guard is a 503 as for any write.
   */
  async writeIfAbsent(absent: string[], ops: Op[]): Promise<boolean> {
    if (absent.length + ops.length > MAX_TXN_OPS) throw new Error(`writeIfAbsent: ${absent.length} compares and ${ops.length} operations exceed one transaction`);
    // thousands of creates at once would send thousands of transactions at once, past etcd's deadline: they queue
    while (this.guardedInFlight >= TXN_IN_FLIGHT) await new Promise<void>((r) => this.guardedWaiting.push(r));
    this.guardedInFlight++;
    try {
      if (await this.health.track(this.txn(absent, ops))) return true;
      if (!(await this.health.track(this.txn([], [])))) this.refused();
      return false;
    } finally {
      this.guardedInFlight--;
      this.guardedWaiting.shift()?.();
    }
  }

  private refused(): never {
    this.onRefused?.();
    throw unavailable('this manager may not write the cluster state (it is not the leader)');
  }

  /** Which of `keys` exist. */
  async existing(keys: string[]): Promise<Set<string>> {
    const got = await Promise.all(keys.map((k) => this.read(() => this.ns.get(k).string())));
    return new Set(keys.filter((_, i) => got[i] !== null));
  }

  /** Reads, with an unreachable etcd as a 503, their outcome told to `health`. */
  private read<T>(fn: () => Promise<T>): Promise<T> {
    return this.health.track(fn().catch((err: unknown) => {
      throw unavailable(`${UNREACHABLE}: ${errorMessage(err)}`);
    }));
  }

  /**
   * The manager's periodic check: some member's /health (bounded: it notices an etcd that hangs before a call's
   * retries would), then one small read, whose answer is what says etcd is back.
   */
  async probe(): Promise<void> {
    const answers = await Promise.all(this.endpoints.map((e) => healthy(e, PROBE_TIMEOUT_MS)));
    if (!answers.includes(true)) this.health.lost(`${UNREACHABLE}: no member answers /health (${this.endpoints.join(', ')})`);
    else await this.read(() => this.ns.get('tokens/worker').string()).catch(() => undefined);
  }

  /**
   * The keys under `prefix` (without it), their JSON values parsed; read in pages, so that hundreds of thousands
   * of keys do not make an answer past gRPC's 4 MB. etcd answers a range in key order; asking it to sort would
   * make it read the whole range for each page.
   */
  async readAll<T>(prefix: string): Promise<Map<string, T>> {
    const out = new Map<string, T>();
    const end = Range.prefix(prefix).end;
    for (let from: Buffer = Buffer.from(prefix); ;) {
      const kv = await this.read(() => this.ns.getAll().inRange(new Range(from, end)).limit(READ_PAGE).strings());
      const ks = Object.keys(kv);
      for (const k of ks) out.set(k.slice(prefix.length), JSON.parse(kv[k]!) as T);
      if (ks.length < READ_PAGE) return out;
      from = Buffer.concat([Buffer.from(ks[ks.length - 1]!), Buffer.from([0])]);
    }
  }

  async readOne<T>(key: string): Promise<T | undefined> {
    const v = await this.read(() => this.ns.get(key).string());
    return v === null ? undefined : (JSON.parse(v) as T);
  }

  putNode(n: NodeRecord): Promise<void> {
    return this.write([{ put: `nodes/${n.id}`, value: n }]);
  }
  async nodes(): Promise<NodeRecord[]> {
    return [...(await this.readAll<NodeRecord>('nodes/')).values()];
  }

  /** Placements land before any engine is told. */
  putPlacements(ps: Array<{ id: string; placement: Placement }>): Promise<void> {
    return this.write(ps.map((p) => ({ put: `placements/${p.id}`, value: p.placement })));
  }
  placements(): Promise<Map<string, Placement>> {
    return this.readAll<Placement>('placements/');
  }

  putBatch(b: BatchRecord): Promise<void> {
    return this.write([{ put: `batches/${b.id}`, value: b }]);
  }
  batch(id: string): Promise<BatchRecord | undefined> {
    return this.readOne<BatchRecord>(`batches/${id}`);
  }

  /** The leader's own record, under its own guard (src/cluster/election.ts). */
  putLeader(rec: unknown): Promise<void> {
    return this.write([{ put: 'leader', value: rec }]);
  }

  /** Stores a token's hash (the token itself is never stored). */
  async setToken(token: string): Promise<void> {
    await this.write([{ put: 'tokens/worker', value: hashToken(token) }]);
    this.tokenHash = hashToken(token);
  }
  async hasToken(): Promise<boolean> {
    return (await this.readTokenHash()) !== undefined;
  }

  /**
   * The hash as etcd holds it; while etcd is unreachable, the one last read: engines still join then, and nobody
   * can rotate the token meanwhile.
   */
  private async readTokenHash(): Promise<string | undefined> {
    try {
      return (this.tokenHash = await this.readOne<string>('tokens/worker'));
    } catch (err) {
      if (this.tokenHash === undefined) throw err;
      return this.tokenHash;
    }
  }

  async checkToken(token: string): Promise<boolean> {
    const v = await this.readTokenHash();
    if (!v) return false;
    const want = Buffer.from(v, 'hex');
    const got = Buffer.from(hashToken(token), 'hex');
    return want.length === got.length && timingSafeEqual(want, got);
  }
}

/**
 * Writes of one tick share a transaction, and etcd refuses a transaction that names a key twice ("duplicate key
 * given in txn request"): two writers of one key in a tick (a service's record by the release and by the update
 * that started it) keep the last write, as they would one after the other.
 */
export function lastPerKey(ops: Op[]): Op[] {
  const key = (o: Op) => ('put' in o ? o.put : 'del' in o ? o.del : `${o.delPrefix}*`);
  const last = new Map<string, number>();
  ops.forEach((o, i) => last.set(key(o), i));
  return last.size === ops.length ? ops : ops.filter((o, i) => last.get(key(o)) === i);
}
