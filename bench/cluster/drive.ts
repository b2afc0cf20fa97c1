/**
 * The client side of bench/cluster/run.sh, against a manager's Docker API socket; prints one JSON line.
 *   batch  --api PATH --prefix P --replicas R : POST /sampan/v1/batches; placements/s, each replica's latency (from
 *                                               the request to its line in the stream) p50/p99, errors
 *   lookup --api PATH --n K --engines E --containers C : K `docker ps --filter name=X` and K `docker inspect X` requests over
 *                                               the simulator's containers X = simI-cK, one at a time: p50/p99 of each
 *   concurrent --api PATH --n N --prefix P [--conns C] : N clients at once, each `POST /containers/create?name=P-i`
 *                                               then `POST /containers/ID/start` (what `docker run -d` sends), over C
 *                                               keep-alive connections (default N: one per client); placements/s,
 *                                               p50/p99 of each client's create+start (and of its create alone),
 *                                               failures by step, status and message; then the API's list: how many
 *                                               P-i exist, distinct, duplicated, running, on how many nodes
 */
import http from 'node:http';
import { parseArgs } from 'node:util';

const { positionals, values: o } = parseArgs({
  allowPositionals: true,
  options: { api: { type: 'string' }, prefix: { type: 'string', default: 'r' }, replicas: { type: 'string', default: '1000' }, n: { type: 'string', default: '200' }, conns: { type: 'string' }, network: { type: 'string' }, engines: { type: 'string' }, containers: { type: 'string' } },
});
const socketPath = o.api!;
/** The containers' config; `--network NAME` puts them on that network (the cluster's default network without it). */
const containerConfig = () => ({ Image: 'busybox', Cmd: ['sleep', 'infinity'], ...(o.network && { HostConfig: { NetworkMode: o.network } }) });
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const pct = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? Number(s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!.toFixed(2)) : null;
};

function call(method: string, path: string, body?: unknown, onData?: (chunk: Buffer) => void, agent?: http.Agent): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ socketPath, agent, method, path, headers: payload ? { 'Content-Type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (onData ? onData(c) : (text += c.toString('utf8'))));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

async function batch(): Promise<object> {
  const replicas = Number(o.replicas);
  const lat: number[] = [];
  let errors = 0;
  let rest = '';
  const t0 = process.hrtime.bigint();
  const r = await call('POST', '/sampan/v1/batches', { prefix: o.prefix, replicas, config: containerConfig() }, (chunk) => {
    const lines = (rest + chunk.toString('utf8')).split('\n');
    rest = lines.pop()!;
    for (const l of lines) {
      const m = JSON.parse(l) as { replica?: { error?: string } };
      if (!m.replica) continue;
      lat.push(ms(t0));
      if (m.replica.error) errors++;
    }
  });
  const seconds = ms(t0) / 1000;
  return { status: r.status, replicas, reported: lat.length, errors, seconds: Number(seconds.toFixed(2)), placementsPerSec: Math.round(lat.length / seconds), p50ms: pct(lat, 0.5), p99ms: pct(lat, 0.99) };
}

async function lookup(): Promise<object> {
  const n = Number(o.n);
  const engines = Number(o.engines);
  const per = Number(o.containers);
  const ps: number[] = [];
  const insp: number[] = [];
  for (let k = 0; k < n; k++) {
    const name = `sim${Math.floor(Math.random() * engines)}-c${Math.floor(Math.random() * per)}`;
    let t0 = process.hrtime.bigint();
    const a = await call('GET', `/v1.43/containers/json?filters=${encodeURIComponent(JSON.stringify({ name: [`^${name}$`] }))}`);
    ps.push(ms(t0));
    if (a.status !== 200 || (JSON.parse(a.text) as unknown[]).length !== 1) throw new Error(`ps ${name}: ${a.status} ${a.text.slice(0, 200)}`);
    t0 = process.hrtime.bigint();
    const b = await call('GET', `/v1.43/containers/${name}/json`);
    insp.push(ms(t0));
    if (b.status !== 200) throw new Error(`inspect ${name}: ${b.status} ${b.text.slice(0, 200)}`);
  }
  return { n, psP50ms: pct(ps, 0.5), psP99ms: pct(ps, 0.99), inspectP50ms: pct(insp, 0.5), inspectP99ms: pct(insp, 0.99) };
}

/** An error body's message, cut short: the failures are counted by it. */
function messageOf(text: string): string {
  try {
    return String((JSON.parse(text) as { message?: unknown }).message).slice(0, 120);
  } catch {
    return text.slice(0, 120).trim();
  }
}

async function concurrent(): Promise<object> {
  const n = Number(o.n);
  const prefix = o.prefix!;
  // every request of a client waits for the one before it, so C sockets carry at most C requests at a time
  const conns = Number(o.conns ?? n);
  const agent = new http.Agent({ keepAlive: true, maxSockets: conns });
  const lat: number[] = [];
  const createLat: number[] = [];
  const failures = new Map<string, number>();
  const fail = (what: string) => failures.set(what, (failures.get(what) ?? 0) + 1);
  const client = async (i: number) => {
    const t0 = process.hrtime.bigint();
    try {
      const c = await call('POST', `/v1.43/containers/create?name=${prefix}-${i}`, containerConfig(), undefined, agent);
      if (c.status !== 201) return fail(`create ${c.status}: ${messageOf(c.text)}`);
      createLat.push(ms(t0));
      const s = await call('POST', `/v1.43/containers/${(JSON.parse(c.text) as { Id: string }).Id}/start`, undefined, undefined, agent);
      if (s.status !== 204) return fail(`start ${s.status}: ${messageOf(s.text)}`);
      lat.push(ms(t0));
    } catch (err) {
      fail((err as NodeJS.ErrnoException).code ?? (err as Error).message);
    }
  };
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: n }, (_, i) => client(i + 1)));
  const seconds = ms(t0) / 1000;
  agent.destroy();
  // the names as the manager lists them (/NODE/NAME): each P-i once, and nothing else under P
  const list = await call('GET', `/v1.43/containers/json?all=1&filters=${encodeURIComponent(JSON.stringify({ name: [`${prefix}-`] }))}`);
  if (list.status !== 200) throw new Error(`list: ${list.status} ${list.text.slice(0, 200)}`);
  const seen = new Map<string, number>();
  const perNode = new Map<string, number>();
  let running = 0;
  const own = /^(.+)-\d+$/;
  for (const c of JSON.parse(list.text) as { Names: string[]; State: string }[]) {
    const [, node = '', name = ''] = c.Names[0]!.split('/');
    if (own.exec(name)?.[1] !== prefix) continue;
    seen.set(name, (seen.get(name) ?? 0) + 1);
    perNode.set(node, (perNode.get(node) ?? 0) + 1);
    if (c.State === 'running') running++;
  }
  const listed = [...seen.values()].reduce((a, b) => a + b, 0);
  const missing = Array.from({ length: n }, (_, i) => `${prefix}-${i + 1}`).filter((x) => !seen.has(x)).length;
  return {
    n, conns, ok: lat.length, failed: n - lat.length, failures: Object.fromEntries(failures), seconds: Number(seconds.toFixed(2)),
    placementsPerSec: Math.round(lat.length / seconds), p50ms: pct(lat, 0.5), p99ms: pct(lat, 0.99),
    createP50ms: pct(createLat, 0.5), createP99ms: pct(createLat, 0.99), listed, distinct: seen.size, missing, duplicated: [...seen.values()].filter((k) => k > 1).length, running,
    nodes: perNode.size, maxPerNode: Math.max(0, ...perNode.values()),
  };
}

const modes: Record<string, () => Promise<object>> = { batch, lookup, concurrent };
const mode = modes[positionals[0] ?? ''];
if (!mode) throw new Error('usage: drive.js batch|lookup|concurrent --api PATH …');
const out = await mode();
process.stdout.write(JSON.stringify(out) + '\n');
