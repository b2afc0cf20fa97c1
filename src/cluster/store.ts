/**
 * The cluster's durable state in etcd, under /sampan/cluster/<name>/: nodes (state transitions, not heartbeats),
 * placements (which node owns which container), batches, and the join token's hash. Every write is one etcd
 * transaction made in `write`, behind a guard compare that stands for "this manager may write": always true while
 * there is one manager; the leader's fencing compare once there are several. A second manager reads the same keys.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Etcd3, type Namespace } from 'etcd3';
import { unavailable, errorMessage } from '../lib/errors.js';

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
  name: string;
  batch?: string;
}

export interface BatchReplica {
  name: string;
  node?: string;
  id?: string;
  error?: string;
}

export interface BatchRecord {
  id: string;
  prefix: string;
  replicas: number;
  image: string;
  state: 'running' | 'done' | 'failed';
  createdAt: string;
  results: BatchReplica[];
}

type Op = { put: string; value: unknown } | { del: string };

/** A compare every write carries: [key, target, comparator, value]. */
export type Guard = [string, 'Version' | 'Value' | 'Create' | 'Mod', '==' | '!=' | '>' | '<', string | number];
/** Holds for any key: a missing key's version is 0. */
const ALWAYS: Guard = ['guard', 'Version', '>', -1];

export const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');
export const newToken = (): string => `SMPTKN-${randomBytes(24).toString('hex')}`;

export class ClusterStore {
  private readonly ns: Namespace;
  guard: Guard = ALWAYS;
  /** Told each transaction's duration in seconds (the manager's metrics). */
  onWrite?: (seconds: number) => void;

  constructor(
    private readonly client: Etcd3,
    readonly clusterName: string,
  ) {
    this.ns = client.namespace(`/sampan/cluster/${clusterName}/`);
  }

  static connect(endpoints: string[], clusterName: string): ClusterStore {
    return new ClusterStore(new Etcd3({ hosts: endpoints, dialTimeout: 3000 }), clusterName);
  }

  close(): void {
    this.client.close();
  }

  /** The one way state is written: all ops in one transaction, under the guard; etcd unreachable is a 503. */
  private async write(ops: Op[]): Promise<void> {
    if (!ops.length) return;
    const [key, target, cmp, value] = this.guard;
    let ok: boolean;
    const t0 = process.hrtime.bigint();
    try {
      const r = await this.ns
        .if(key, target, cmp, value)
        .then(...ops.map((o) => ('put' in o ? this.ns.put(o.put).value(JSON.stringify(o.value)) : this.ns.delete().key(o.del))))
        .commit();
      ok = r.succeeded;
    } catch (err) {
      throw unavailable(`cluster state store (etcd) unreachable: ${errorMessage(err)}`);
    } finally {
      this.onWrite?.(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    if (!ok) throw unavailable('this manager may not write the cluster state (it is not the leader)');
  }

  /** Reads, with an unreachable etcd as a 503. */
  private async read<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw unavailable(`cluster state store (etcd) unreachable: ${errorMessage(err)}`);
    }
  }

  private async readAll<T>(prefix: string): Promise<Map<string, T>> {
    const kv = await this.read(() => this.ns.getAll().prefix(prefix).strings());
    return new Map(Object.entries(kv).map(([k, v]) => [k.slice(prefix.length), JSON.parse(v) as T]));
  }

  private async readOne<T>(key: string): Promise<T | undefined> {
    const v = await this.read(() => this.ns.get(key).string());
    return v === null ? undefined : (JSON.parse(v) as T);
  }

  putNode(n: NodeRecord): Promise<void> {
    return this.write([{ put: `nodes/${n.id}`, value: n }]);
  }
  async nodes(): Promise<NodeRecord[]> {
    return [...(await this.readAll<NodeRecord>('nodes/')).values()];
  }

  /** Placements land before any engine is told (a batch's in one transaction). */
  putPlacements(ps: Array<{ id: string; placement: Placement }>): Promise<void> {
    return this.write(ps.map((p) => ({ put: `placements/${p.id}`, value: p.placement })));
  }
  deletePlacements(ids: string[]): Promise<void> {
    return this.write(ids.map((id) => ({ del: `placements/${id}` })));
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

  /** Stores a token's hash (the token itself is never stored). */
  setToken(token: string): Promise<void> {
    return this.write([{ put: 'tokens/worker', value: hashToken(token) }]);
  }
  async hasToken(): Promise<boolean> {
    return (await this.readOne<string>('tokens/worker')) !== undefined;
  }
  async checkToken(token: string): Promise<boolean> {
    const v = await this.readOne<string>('tokens/worker');
    if (!v) return false;
    const want = Buffer.from(v, 'hex');
    const got = Buffer.from(hashToken(token), 'hex');
    return want.length === got.length && timingSafeEqual(want, got);
  }
}
