/**
 * Batches: N identical replicas PREFIX-1…N in one scheduling pass. Each replica gets its id (and its address on a
 * cluster network) here; the batch record and then the placements (which node holds which id, in etcd) are written
 * before any engine is told; then each replica's create + start goes down its node's connection, BATCH_IN_FLIGHT at a time (NODE_IN_FLIGHT per node,
 * so a binpacked batch does not swamp one engine). A replica that fails is retried once on another node under the
 * same id; its placement moves first, so a copy the first node made anyway is an orphan it is told to remove. Each
 * replica's result is reported as it lands; the record's counts reach etcd every PROGRESS_MS while it runs.
 */
import { randomBytes } from 'node:crypto';
import { errorMessage, invalid } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import type { ClusterContainers } from './backend/containers.js';
import type { Cluster } from './backend/index.js';
import type { NewPlacement } from './state.js';
import { schedulingRequest } from './request.js';
import { STRATEGIES, type Strategy } from './scheduler.js';
import type { NodeEntry } from './state.js';
import { MAX_BATCH_ERRORS, type BatchRecord } from './store.js';

const BATCH_IN_FLIGHT = 2048;
const NODE_IN_FLIGHT = 8;
const PROGRESS_MS = 1000;
export const MAX_REPLICAS = 100_000;

/** `POST /sampan/v1/batches`. */
export interface BatchRequest {
  /** Replicas are named PREFIX-1…PREFIX-N. */
  prefix: string;
  replicas: number;
  /** The body of a `POST /containers/create`, constraints included. */
  config: Record<string, unknown>;
  strategy?: Strategy;
}

/** One replica's outcome, as the batch's stream reports it. */
export interface BatchReplica {
  name: string;
  node?: string;
  id?: string;
  error?: string;
}

export function validateBatch(b: unknown): BatchRequest {
  const r = (b ?? {}) as Partial<BatchRequest>;
  if (typeof r.prefix !== 'string' || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(r.prefix)) throw invalid('batch: "prefix" must be a container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)');
  if (!Number.isInteger(r.replicas) || r.replicas! < 1 || r.replicas! > MAX_REPLICAS) throw invalid(`batch: "replicas" must be an integer from 1 to ${MAX_REPLICAS}`);
  if (!r.config || typeof r.config !== 'object' || typeof r.config.Image !== 'string') throw invalid('batch: "config" must be a container config with an Image');
  if (r.strategy !== undefined && !STRATEGIES.includes(r.strategy)) throw invalid(`batch: "strategy" must be one of ${STRATEGIES.join(', ')}`);
  return r as BatchRequest;
}

/** Runs `fn` on each item, at most `cap` at once and at most `perKey` at once for items of one key. */
async function limited<T>(items: T[], cap: number, perKey: number, key: (t: T) => string, fn: (t: T) => Promise<void>): Promise<void> {
  const queues = new Map<string, T[]>();
  for (const t of items) {
    const k = key(t);
    const q = queues.get(k);
    if (q) q.push(t);
    else queues.set(k, [t]);
  }
  const busy = new Map<string, number>();
  // keys that have work and a free slot, in turn
  const ready: string[] = [...queues.keys()];
  let running = 0;
  await new Promise<void>((resolve) => {
    const next = (): void => {
      while (running < cap && ready.length) {
        const k = ready.shift()!;
        const q = queues.get(k)!;
        const t = q.shift()!;
        busy.set(k, (busy.get(k) ?? 0) + 1);
        if (q.length && busy.get(k)! < perKey) ready.push(k);
        running++;
        void fn(t).finally(() => {
          running--;
          const b = busy.get(k)! - 1;
          busy.set(k, b);
          // the key was off the ready list while full: back on it with its freed slot
          if (q.length && b === perKey - 1) ready.push(k);
          if (!running && !ready.length) resolve();
          else next();
        });
      }
      if (!running && !ready.length) resolve();
    };
    next();
  });
}

export async function runBatch(c: Cluster, containers: ClusterContainers, b: BatchRequest, progress: (r: BatchReplica, done: number) => void): Promise<BatchRecord> {
  const { req, body } = schedulingRequest(b.config);
  const names = Array.from({ length: b.replicas }, (_, i) => `${b.prefix}-${i + 1}`);
  const held: string[] = [];
  try {
    for (const n of names) {
      c.state.reserveName(n);
      held.push(n);
    }
    const nodes = await c.schedule(req, names.length, { strategy: b.strategy });
    const now = new Date().toISOString();
    const rec: BatchRecord = {
      id: randomBytes(8).toString('hex'), prefix: b.prefix, replicas: b.replicas, image: String(b.config.Image), state: 'running',
      createdAt: now, updatedAt: now, running: 0, failed: 0, errors: [], config: b.config,
    };
    const addr = c.net.request(body);
    const net = (): Pick<NewPlacement, 'net'> => (addr ? { net: { network: addr.network.spec.id, ...(addr.ip && { want: addr.ip }) } } : {});
    const replicas = names.map((name, i) => ({ id: newId(), node: nodes[i]!, name, batch: rec.id, ...net() }));
    // the record first: a manager that takes over resumes the batch from it and the placements that name it
    await c.store.putBatch(rec);
    try {
      await c.place(replicas);
    } catch (err) {
      // nothing was told to any engine (an exhausted network places nothing): the placements no longer count on
      // their nodes, and the record says why the batch failed
      for (const n of nodes) c.settled(n);
      await c.store.putBatch({ ...rec, state: 'failed', failed: rec.replicas, errors: [{ name: b.prefix, error: errorMessage(err) }], updatedAt: new Date().toISOString() }).catch(() => undefined);
      throw err;
    }
    c.log.info({ batch: rec.id, prefix: b.prefix, replicas: b.replicas }, 'batch placed');
    const saveProgress = () => {
      rec.updatedAt = new Date().toISOString();
      return c.store.putBatch({ ...rec, errors: [...rec.errors] });
    };
    const ticker = setInterval(() => void saveProgress().catch((err: unknown) => c.log.warn({ batch: rec.id, err: errorMessage(err) }, 'could not record the batch\'s progress')), PROGRESS_MS);
    let done = 0;
    try {
      const one = async (r: (typeof replicas)[number]): Promise<BatchReplica> => {
        try {
          await containers.createOn(r, body, { start: true, placed: true });
          return { name: r.name, node: r.node.rec.name, id: r.id };
        } catch (first) {
          c.log.warn({ batch: rec.id, replica: r.name, node: r.node.rec.name, err: errorMessage(first) }, 'replica failed: retrying on another node');
        }
        let node: NodeEntry | undefined;
        try {
          [node] = await c.schedule(req, 1, { exclude: new Set([r.node.rec.id]), strategy: b.strategy });
          // a new address too: the first one is in the failed node's block
          await containers.createOn({ ...r, node: node!, ...net() }, body, { start: true });
          return { name: r.name, node: node!.rec.name, id: r.id };
        } catch (err) {
          return { name: r.name, node: (node ?? r.node).rec.name, error: errorMessage(err) };
        }
      };
      await limited(replicas, BATCH_IN_FLIGHT, NODE_IN_FLIGHT, (r) => r.node.rec.id, async (r) => {
        const out = await one(r);
        if (!out.error) rec.running++;
        else {
          rec.failed++;
          if (rec.errors.length < MAX_BATCH_ERRORS) rec.errors.push({ name: r.name, error: out.error });
        }
        progress(out, ++done);
      });
    } finally {
      clearInterval(ticker);
    }
    rec.state = rec.failed ? 'failed' : 'done';
    await saveProgress();
    return rec;
  } finally {
    for (const n of held) c.state.releaseName(n);
  }
}
