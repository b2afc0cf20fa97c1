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

const out = { joined: 0, containers: 0, total: 0, distinct: 0, duplicated: 0, running: 0 };
const names = new Map<string, number>();
for (const ctl of positionals) {
  const c = await get<{ joined: number; containers: number }>(ctl, '/count');
  out.joined += c.joined;
  out.containers += c.containers;
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
