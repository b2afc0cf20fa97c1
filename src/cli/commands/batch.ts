/** `sampan run --replicas N`: a batch of identical replicas through the cluster manager's /sampan/v1/batches, with a progress bar. */
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { clientFor } from '../client.js';
import { jsonMessages } from '../../lib/engine-client.js';
import type { BatchRecord, BatchReplica } from '../../cluster/index.js';

/** A line of the manager's batch stream: each replica as it ends, then the batch. */
interface BatchLine {
  batch?: BatchRecord;
  replica?: BatchReplica;
  done?: number;
  error?: string;
}

export async function runReplicas(body: Record<string, unknown>, prefix: string | undefined, replicas: number, cmd: Command): Promise<void> {
  if (!Number.isInteger(replicas) || replicas < 1) throw new Error(`--replicas ${replicas}: a positive integer`);
  if (!prefix) throw new Error('--replicas needs --name PREFIX: the replicas are named PREFIX-1…PREFIX-N');
  const client = clientFor(cmd);
  const started = Date.now();
  const res = await client.stream('POST', '/sampan/v1/batches', { body: { prefix, replicas, config: body } });
  const bar = new cliProgress.SingleBar({ format: 'replicas [{bar}] {value}/{total} {failed}', stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic);
  bar.start(replicas, 0, { failed: '' });
  let failed = 0;
  let batch: BatchRecord | undefined;
  const perNode = new Map<string, number>();
  const errors: string[] = [];
  for await (const m of jsonMessages<BatchLine>(res)) {
    if (m.error) throw new Error(m.error);
    if (m.batch) batch = m.batch;
    else if (m.replica) {
      const r = m.replica;
      if (r.error) {
        failed++;
        errors.push(`${r.name}: ${r.error}\n`);
      } else if (r.node) perNode.set(r.node, (perNode.get(r.node) ?? 0) + 1);
      bar.update(Number(m.done), { failed: failed ? `(${failed} failed)` : '' });
    }
  }
  bar.stop();
  if (!batch) throw new Error('the manager ended the batch without a result');
  for (const e of errors) process.stderr.write(e);
  const ok = batch.running;
  const nodes = [...perNode].sort(([a], [b]) => a.localeCompare(b)).map(([n, c]) => `${n} ${c}`).join(', ');
  process.stdout.write(`batch ${batch.id}: ${ok} of ${replicas} replicas running (${prefix}-1…${prefix}-${replicas}) in ${Date.now() - started} ms; per node: ${nodes || 'none'}\n`);
  if (failed) process.exitCode = 1;
}
