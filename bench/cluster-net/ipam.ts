/**
 * Cluster IPAM at scale (issue 17, "Measure"): the manager's allocator (src/cluster/network) with its etcd writes,
 * against a real etcd, for HOSTS simulated hosts × PER containers on one cluster network. The hosts are names, not
 * engines: what is measured is an allocation as a create makes it — the address chosen in memory, the host's block
 * leased when it has none (its own transaction), the placement and the address's key written in one transaction
 * that holds only if that key is absent. Creates arrive round-robin over the hosts (each host's first create leases
 * its block), CONCURRENCY in flight; with MANAGERS > 1 each create goes to one of several allocators over the same
 * etcd, each knowing only what it wrote and what it lost races on. Afterwards every placement and address is read
 * back from etcd: no address held twice, every placement's address key naming that container.
 * Usage (after npm run build): node dist/bench/cluster-net/ipam.js [HOSTS=30000] [PER=30] [CONCURRENCY=64] [MANAGERS=1]
 * Env: BENCH_ETCD_DIR (a temp dir under /tmp: etcd's data on the disk).
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { NewPlacement } from '../../src/cluster/state.js';
import { EtcdCluster } from '../../src/cluster/etcd.js';
import { ClusterNetworking } from '../../src/cluster/network/networks.js';
import type { NodeEntry } from '../../src/cluster/state.js';
import { ClusterStore, type Placement } from '../../src/cluster/store.js';

const [HOSTS = 30_000, PER = 30, CONCURRENCY = 64, MANAGERS = 1] = process.argv.slice(2).map(Number);
// a /27 block holds 30 containers (its first address is the host's gateway, its last unused): one block a host;
// the /12 network has 32,768 of them
const CFG = { pool: '10.192.0.0/12', networkSize: 12, blockSize: 27, routing: 'host-gw' as const };

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function main(): Promise<void> {
  const dir = process.env.BENCH_ETCD_DIR ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'spipam-bench-')));
  const etcd = await EtcdCluster.start({ dir, members: 1 });
  const stores = Array.from({ length: MANAGERS }, () => ClusterStore.connect(etcd.endpoints, 'bench'));
  try {
    const managers = stores.map((s) => new ClusterNetworking(s, CFG));
    await managers[0]!.load(new Map());
    await managers[0]!.ensureDefault(); // makes the network
    await Promise.all(managers.slice(1).map((m) => m.load(new Map())));
    const net = managers[0]!.get('cluster').spec.id;
    const nodes = Array.from({ length: HOSTS }, (_, i) => ({ rec: { id: `host${i}` } }) as NodeEntry);
    const total = HOSTS * PER;
    const lat = new Float64Array(total);
    let next = 0;
    let failed = 0;
    const t0 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < total) {
        const i = next++;
        // ids spread over the key space (an odd multiplier mod 2^32: distinct), as the manager's random ones are
        const p: NewPlacement = { id: (Math.imul(i, 2654435761) >>> 0).toString(16).padStart(8, '0'), node: nodes[i % HOSTS]!, net: { network: net } };
        const s = process.hrtime.bigint();
        try {
          // a host's creates alternate between the allocators: they race for its block and its addresses
          await managers[(i + Math.floor(i / HOSTS)) % MANAGERS]!.place([p]);
        } catch (err) {
          failed++;
          if (failed <= 5) console.error(`allocation ${i} failed: ${(err as Error).message}`);
        }
        lat[i] = Number(process.hrtime.bigint() - s) / 1e6;
        if ((i + 1) % 100_000 === 0) console.error(`${i + 1} of ${total} allocated`);
      }
    }));
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const sorted = Array.from(lat).sort((a, b) => a - b);
    const row = (k: string, v: string | number) => console.log(`| ${k} | ${v} |`);
    console.log(`\n| IPAM, ${HOSTS.toLocaleString('en')} hosts × ${PER} containers, ${CONCURRENCY} in flight, ${MANAGERS} allocator(s) | |\n|---|---|`);
    row('allocations', `${(total - failed).toLocaleString('en')} of ${total.toLocaleString('en')} in ${secs.toFixed(0)} s (${Math.round(total / secs).toLocaleString('en')}/s)`);
    row('latency p50 / p99 / max', `${pct(sorted, 50).toFixed(2)} / ${pct(sorted, 99).toFixed(2)} / ${sorted[sorted.length - 1]!.toFixed(1)} ms`);

    // read back from etcd
    const reader = stores[0]!;
    const byIp = new Map<string, string>();
    let dupes = 0;
    let placements = 0;
    for (const [id, p] of await reader.readAll<Placement>('placements/')) {
      placements++;
      if (!p.ip) continue;
      if (byIp.has(p.ip)) dupes++;
      byIp.set(p.ip, id);
    }
    let keyed = 0;
    let mismatched = 0;
    for (const [ip, v] of await reader.readAll<{ container: string }>(`ips/${net}/`)) {
      keyed++;
      if (byIp.get(ip) !== v.container) mismatched++;
    }
    const blocks = (await reader.readAll<{ node: string }>(`blocks/${net}/`)).size;
    row('blocks leased (etcd)', blocks.toLocaleString('en'));
    row('placements with an address (etcd)', `${byIp.size.toLocaleString('en')} of ${placements.toLocaleString('en')}`);
    row('address keys (etcd)', keyed.toLocaleString('en'));
    row('addresses held twice', dupes);
    row('address keys not naming their placement\'s container', mismatched);
    if (dupes || mismatched || failed || keyed !== total) process.exitCode = 1;
  } finally {
    stores.forEach((s) => s.close());
    await etcd.stop();
    if (!process.env.BENCH_ETCD_DIR) await fs.rm(dir, { recursive: true, force: true });
  }
}

await main();
