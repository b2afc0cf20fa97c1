/**
 * Counts over the simulators of bench/cluster/run.sh (one or more, each with its control socket), as one: the
 * engines joined, the containers, and a batch's replicas PREFIX-n (how many, how many distinct names, how many held
 * more than once — across simulators too —, how many running). Prints one JSON line.
 * Usage: node dist/bench/cluster/count.js [--prefix P] CTL_SOCKET…
 */
import http from 'node:http';
import { parseArgs } from 'node:util';

const { positionals, values: o } = parseArgs({ allowPositionals: true, options: { prefix: { type: 'string' } } });

function get<T>(socketPath: string, path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    http.get({ socketPath, path, timeout: 30_000 }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString('utf8')));
      res.on('end', () => resolve(JSON.parse(text) as T));
      res.on('error', reject);
    }).on('error', reject);
  });
}

const out: Record<string, number> = { joined: 0, containers: 0, total: 0, distinct: 0, duplicated: 0, running: 0, peerMsgs: 0, peerEntries: 0, peerBytes: 0, peerLast: 0 };
type Counts = { joined: number; containers: number; peerMsgs?: number; peerEntries?: number; peerBytes?: number; peerLast?: number; peerSampleMin?: number; peerSampleMax?: number };
const names = new Map<string, number>();
for (const ctl of positionals) {
  const c = await get<Counts>(ctl, '/count');
  out.joined += c.joined;
  out.containers += c.containers;
  // the route fan-out: summed, its last message the latest of any simulator, the sampled engines' fewest and most holders
  out.peerMsgs! += c.peerMsgs ?? 0;
  out.peerEntries! += c.peerEntries ?? 0;
  out.peerBytes! += c.peerBytes ?? 0;
  out.peerLast = Math.max(out.peerLast!, c.peerLast ?? 0);
  if (c.peerSampleMin !== undefined) out.peerSampleMin = Math.min(out.peerSampleMin ?? Infinity, c.peerSampleMin);
  if (c.peerSampleMax !== undefined) out.peerSampleMax = Math.max(out.peerSampleMax ?? 0, c.peerSampleMax);
  if (o.prefix === undefined) continue;
  for (const [name, running] of await get<Array<[string, boolean]>>(ctl, `/names?prefix=${encodeURIComponent(o.prefix)}`)) {
    names.set(name, (names.get(name) ?? 0) + 1);
    out.total++;
    if (running) out.running++;
  }
}
out.distinct = names.size;
for (const n of names.values()) if (n > 1) out.duplicated++;
process.stdout.write(`${JSON.stringify(out)}\n`);
