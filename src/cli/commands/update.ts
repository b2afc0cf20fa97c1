import type { Command } from 'commander';
import { clientFor, withErrors } from '../client.js';
import { eachContainer } from './containers.js';
import { collect, hostOpt } from './options.js';
import { parseBytes } from '../../lib/units.js';

interface UpdateOptions {
  memory?: string;
  memorySwap?: string;
  memoryReservation?: string;
  cpus?: string;
  cpuShares?: string;
  cpusetCpus?: string;
  pidsLimit?: string;
  restart?: string;
  storageOpt?: string[];
}

/** Options as `docker update` names them; `--storage-opt size=` (raising a writable layer's quota) is Sampan's own. */
export function updateBody(o: UpdateOptions): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  const int = (flag: string, v: string) => {
    if (!/^-?\d+$/.test(v)) throw new Error(`invalid value for ${flag}: ${v}`);
    return Number(v);
  };
  if (o.memory) body.Memory = parseBytes(o.memory);
  if (o.memorySwap) body.MemorySwap = o.memorySwap === '-1' ? -1 : parseBytes(o.memorySwap);
  if (o.memoryReservation) body.MemoryReservation = parseBytes(o.memoryReservation);
  if (o.cpus) {
    const n = Number(o.cpus);
    if (!Number.isFinite(n) || n < 0) throw new Error(`invalid value for --cpus: ${o.cpus}`);
    body.NanoCpus = Math.round(n * 1e9);
  }
  if (o.cpuShares) body.CpuShares = int('--cpu-shares', o.cpuShares);
  if (o.cpusetCpus) body.CpusetCpus = o.cpusetCpus;
  if (o.pidsLimit) body.PidsLimit = int('--pids-limit', o.pidsLimit);
  if (o.restart) {
    const [name, count] = o.restart.split(':');
    body.RestartPolicy = { Name: name, MaximumRetryCount: count ? int('--restart', count) : 0 };
  }
  if (o.storageOpt?.length) {
    const opts: Record<string, string> = {};
    for (const kv of o.storageOpt) {
      const i = kv.indexOf('=');
      if (i <= 0) throw new Error(`invalid storage option: ${kv} (expected key=value)`);
      opts[kv.slice(0, i)] = kv.slice(i + 1);
    }
    body.StorageOpt = opts;
  }
  if (!Object.keys(body).length) throw new Error('you must provide one or more flags when using this command');
  return body;
}

export function registerUpdate(program: Command): void {
  hostOpt(
    program
      .command('update')
      .description('Update configuration of one or more containers (resources live, restart policy, writable layer size)')
      .argument('<containers...>', 'container names or IDs')
      .option('-m, --memory <bytes>', 'memory limit')
      .option('--memory-swap <bytes>', 'memory plus swap limit (-1: unlimited swap)')
      .option('--memory-reservation <bytes>', 'memory soft limit')
      .option('--cpus <n>', 'number of CPUs')
      .option('-c, --cpu-shares <n>', 'CPU shares (relative weight)')
      .option('--cpuset-cpus <list>', 'CPUs in which to allow execution (0-3, 0,1)')
      .option('--pids-limit <n>', 'tune container pids limit (-1 for unlimited)')
      .option('--restart <policy>', 'restart policy to apply when a container exits')
      .option('--storage-opt <k=v>', 'size=<bytes>: raise the writable layer quota (repeatable)', collect),
  ).action(
    withErrors(async (names: string[], o: UpdateOptions, cmd: Command) => {
      const body = updateBody(o);
      const client = clientFor(cmd);
      await eachContainer(names, async (n) => {
        await client.request('POST', `/containers/${encodeURIComponent(n)}/update`, { body });
      });
    }),
  );
}
