/**
 * Batches: N identical replicas PREFIX-1…N in one scheduling pass. The placements are written to etcd (the batch
 * record) before any engine is told; then create + start run on the engines in parallel (BATCH_PARALLEL at a time);
 * a replica whose node fails is retried once on another node. Each replica's result is reported as it lands.
 */
import { randomBytes } from 'node:crypto';
import { errorMessage, invalid } from '../lib/errors.js';
import type { ClusterContainers } from './backend/containers.js';
import { mapLimit, type Cluster } from './backend/index.js';
import { schedulingRequest } from './request.js';
import { STRATEGIES, type Strategy } from './scheduler.js';
import type { NodeEntry } from './state.js';
import type { BatchRecord, BatchReplica } from './store.js';

const BATCH_PARALLEL = 32;
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

export function validateBatch(b: unknown): BatchRequest {
  const r = (b ?? {}) as Partial<BatchRequest>;
  if (typeof r.prefix !== 'string' || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(r.prefix)) throw invalid('batch: "prefix" must be a container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)');
  if (!Number.isInteger(r.replicas) || r.replicas! < 1 || r.replicas! > MAX_REPLICAS) throw invalid(`batch: "replicas" must be an integer from 1 to ${MAX_REPLICAS}`);
  if (!r.config || typeof r.config !== 'object' || typeof r.config.Image !== 'string') throw invalid('batch: "config" must be a container config with an Image');
  if (r.strategy !== undefined && !STRATEGIES.includes(r.strategy)) throw invalid(`batch: "strategy" must be one of ${STRATEGIES.join(', ')}`);
  return r as BatchRequest;
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
    const rec: BatchRecord = {
      id: randomBytes(8).toString('hex'), prefix: b.prefix, replicas: b.replicas, image: String(b.config.Image), state: 'running',
      createdAt: new Date().toISOString(), results: names.map((name, i) => ({ name, node: nodes[i]!.rec.name })),
    };
    await c.store.putBatch(rec);
    c.log.info({ batch: rec.id, prefix: b.prefix, replicas: b.replicas }, 'batch placed');
    let done = 0;
    const one = async (node: NodeEntry, name: string): Promise<string> => {
      const { Id } = await containers.createOn(node, body, name, rec.id);
      await containers.start(Id);
      return Id;
    };
    await mapLimit(names, BATCH_PARALLEL, async (name, i) => {
      let node = nodes[i]!;
      const r = rec.results[i]!;
      try {
        r.id = await one(node, name);
      } catch (first) {
        c.log.warn({ batch: rec.id, replica: name, node: node.rec.name, err: errorMessage(first) }, 'replica failed: retrying on another node');
        // what the failed attempt may have left (created, not started) goes before the retry takes its name
        await containers.remove(name, { force: true, volumes: true, link: false }).catch(() => undefined);
        try {
          node = (await c.schedule(req, 1, { exclude: new Set([node.rec.id]), strategy: b.strategy }))[0]!;
          r.node = node.rec.name;
          r.id = await one(node, name);
        } catch (err) {
          r.error = errorMessage(err);
        }
      }
      progress(r, ++done);
    });
    rec.state = rec.results.some((r) => r.error) ? 'failed' : 'done';
    await c.store.putBatch(rec);
    return rec;
  } finally {
    for (const n of held) c.state.releaseName(n);
  }
}

