/**
 * The client side of bench/cluster/run.sh, against a manager's Docker API socket; prints one JSON line.
 *   batch  --api PATH --prefix P --replicas R : POST /sampan/v1/batches; placements/s, each replica's latency (from
 *                                               the request to its line in the stream) p50/p99, errors
 *   lookup --api PATH --n K --engines E --containers C : K `docker ps --filter name=X` and K `docker inspect X` requests over
 *                                               the simulator's containers X = simI-cK, one at a time: p50/p99 of each
 */
import http from 'node:http';
import { parseArgs } from 'node:util';

const { positionals, values: o } = parseArgs({
  allowPositionals: true,
  options: { api: { type: 'string' }, prefix: { type: 'string', default: 'r' }, replicas: { type: 'string', default: '1000' }, n: { type: 'string', default: '200' }, engines: { type: 'string' }, containers: { type: 'string' } },
});
const socketPath = o.api!;
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const pct = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? Number(s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!.toFixed(2)) : null;
};

function call(method: string, path: string, body?: unknown, onData?: (chunk: Buffer) => void): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ socketPath, method, path, headers: payload ? { 'Content-Type': 'application/json' } : {} }, (res) => {
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
  const r = await call('POST', '/sampan/v1/batches', { prefix: o.prefix, replicas, config: { Image: 'busybox', Cmd: ['sleep', 'infinity'] } }, (chunk) => {
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

const out = positionals[0] === 'batch' ? await batch() : positionals[0] === 'lookup' ? await lookup() : undefined;
if (!out) throw new Error('usage: drive.js batch|lookup --api PATH …');
process.stdout.write(JSON.stringify(out) + '\n');
