/**
 * The HA benchmark's driver (bench/cluster-ha/run.sh starts the testbed and calls it): a steady open-loop load of
 * RATE requests/s through the SwarmProxy with the cluster's client certificate — `ps` (GET /containers/json),
 * `inspect` (GET /containers/NAME/json) and `create` (POST /containers/create?name=ha-N) — while the cluster's
 * leader is switched gracefully (`sampan cluster switch`) SWITCHES times, then killed -9 CRASHES times (restarted
 * each time as the standby); then etcd's own election on this machine, side by side: a 3-member etcd whose leader is
 * killed -9 ETCD_ROUNDS times, timed until a survivor reports a new leader.
 *
 * A request that fails (no answer, or a 5xx) is retried every RETRY_MS for up to RETRY_FOR_MS, as a client with
 * retries does; a create retried after an attempt that may have landed is answered 409 (its name is taken), which
 * counts as created. Per switch: the time from the old leader's last answer to the new one's first (each answer
 * names the manager that served it, X-Sampan-Manager), the longest time between two answers around the switch and,
 * in a quiet window of the same length, the load's own (what the machine's load alone costs), and the requests
 * failed and retried. Per crash:
 * the time from the kill to the first create answered after it. At the end every created name is counted on the
 * engines themselves: each once (none lost, none twice).
 *
 * Usage: node dist/bench/cluster-ha/ha.js --testbed DIR [--cluster c1] [--rate 60] [--switches 20] [--crashes 20] [--etcd-rounds 20]
 * Prints one JSON line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, promises as fs } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { EtcdCluster, type TestbedDescription } from '../../src/cluster/index.js';
import { readTls } from '../../src/lib/tls.js';

const { values: o } = parseArgs({
  options: {
    testbed: { type: 'string' }, cluster: { type: 'string', default: 'c1' }, rate: { type: 'string', default: '60' },
    switches: { type: 'string', default: '20' }, crashes: { type: 'string', default: '20' }, 'etcd-rounds': { type: 'string', default: '20' },
    sampan: { type: 'string', default: path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../bin/sampan') },
  },
});
if (!o.testbed) throw new Error('--testbed DIR is required');
const RATE = Number(o.rate);
const RETRY_MS = 20;
const RETRY_FOR_MS = 15_000;
/** How long after a switch or a restart the load runs undisturbed before the next. */
const SETTLE_MS = 2000;

const tb = JSON.parse(await fs.readFile(path.join(o.testbed, 'testbed.json'), 'utf8')) as TestbedDescription;
if (!tb.proxy) throw new Error('the testbed has no proxy: start it with --clusters 2');
const managers = tb.managers.filter((m) => m.cluster === o.cluster);
const pids = managers.map((m) => m.pid);
const restarted: ChildProcess[] = [];
const cert = await readTls(tb.proxy.clients[o.cluster!]!);
const proxyUrl = new URL(tb.proxy.host.replace(/^tcp:/, 'https:'));
const agent = new https.Agent({ ...cert, keepAlive: true, maxSockets: 32 });
const now = () => performance.timeOrigin + performance.now();

interface Answer { status: number; body: string; manager: string }

function viaProxy(method: string, p: string, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = https.request({
      agent, host: proxyUrl.hostname, port: Number(proxyUrl.port), method, path: p, timeout: 10_000,
      headers: data ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } : {},
    }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body: text, manager: String(res.headers['x-sampan-manager'] ?? '') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(data);
  });
}

function onSocket(socketPath: string, p: string, timeout = 1000): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: p, timeout }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

const role = (i: number) => onSocket(managers[i]!.socket!, '/_ping').then((r) => String(r.headers['x-sampan-role']), () => '');
/** The manager's name as its answers give it (X-Sampan-Manager). */
const nameOf = async (i: number) => (JSON.parse((await onSocket(managers[i]!.socket!, '/sampan/v1/manager')).body) as { name: string }).name;
async function leaderIndex(): Promise<number> {
  const roles = await Promise.all(managers.map((_, i) => role(i)));
  return roles.filter((r) => r === 'leader').length === 1 ? roles.indexOf('leader') : -1;
}
async function until(fn: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---- the load
type Op = 'ps' | 'inspect' | 'create';
interface Rec { op: Op; sent: number; done: number; ok: boolean; attempts: number; status: number; manager: string; name?: string; conflictAfterRetry?: boolean }
const recs: Rec[] = [];
const created: string[] = [];
let seq = 0;
const MIX: Op[] = ['ps', 'inspect', 'ps', 'create', 'inspect', 'ps', 'inspect', 'ps', 'create', 'inspect'];

async function one(op: Op): Promise<void> {
  const r: Rec = { op, sent: now(), done: 0, ok: false, attempts: 0, status: 0, manager: '' };
  recs.push(r);
  const name = op === 'create' ? `ha-${++seq}` : undefined;
  const target = created.length ? created[Math.floor(Math.random() * created.length)]! : 'ha-none';
  const deadline = r.sent + RETRY_FOR_MS;
  for (;;) {
    r.attempts++;
    let a: Answer | undefined;
    try {
      a = op === 'ps' ? await viaProxy('GET', '/v1.44/containers/json')
        : op === 'inspect' ? await viaProxy('GET', `/v1.44/containers/${target}/json`)
          : await viaProxy('POST', `/v1.44/containers/create?name=${name}`, { Image: 'busybox', Cmd: ['sleep', '600'], HostConfig: { NetworkMode: 'none' } });
    } catch {
      a = undefined;
    }
    r.status = a?.status ?? 0;
    r.manager = a?.manager ?? '';
    const answered = a !== undefined && a.status < 500;
    if (answered) {
      r.ok = op === 'create' ? a!.status === 201 || (a!.status === 409 && r.attempts > 1) : op === 'inspect' ? a!.status === 200 || (target === 'ha-none' && a!.status === 404) : a!.status === 200;
      if (op === 'create' && a!.status === 409 && r.attempts > 1) r.conflictAfterRetry = true;
      break;
    }
    if (now() > deadline) break;
    await new Promise((res) => setTimeout(res, RETRY_MS));
  }
  r.done = now();
  if (name && r.ok) {
    r.name = name;
    created.push(name);
  }
}

let loadOn = true;
const inflight = new Set<Promise<void>>();
async function load(): Promise<void> {
  const t0 = now();
  for (let k = 0; loadOn; k++) {
    const p = one(MIX[k % MIX.length]!);
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
    const next = t0 + ((k + 1) * 1000) / RATE;
    await new Promise((res) => setTimeout(res, Math.max(0, next - now())));
  }
}

// ---- measures over the records
/**
 * A switch from manager `from` to `to`: the last answer `from` gave to the first `to` gave after it (the answers
 * name the manager that served them); undefined when the answers do not show it.
 */
function handover(old: string, next: string, since: number): number | undefined {
  const answered = recs.filter((r) => r.done >= since && r.manager).sort((a, b) => a.done - b.done);
  const first = answered.find((r) => r.manager === next);
  if (!first) return undefined;
  const before = answered.filter((r) => r.manager === old && r.done <= first.done);
  return before.length ? first.done - before[before.length - 1]!.done : undefined;
}

/** The longest time between two consecutive answers (done times of successful requests) within [from, to]. */
function maxGap(from: number, to: number): number {
  const t = recs.filter((r) => r.ok && r.done >= from && r.done <= to).map((r) => r.done).sort((a, b) => a - b);
  let g = 0;
  for (let i = 1; i < t.length; i++) g = Math.max(g, t[i]! - t[i - 1]!);
  return g;
}
function touched(from: number, to: number): { failed: number; retried: number; requests: number } {
  const rs = recs.filter((r) => r.sent <= to && (r.done === 0 || r.done >= from));
  return { requests: rs.length, failed: rs.filter((r) => r.done && !r.ok).length, retried: rs.filter((r) => r.attempts > 1).length };
}
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? Math.round(s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! * 10) / 10 : null;
};
const summary = (xs: number[]) => ({ n: xs.length, p50: pct(xs, 50), p99: pct(xs, 99), max: xs.length ? Math.round(Math.max(...xs) * 10) / 10 : null });

function run(argv: string[]): Promise<number> {
  return new Promise((resolve) => spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' }).on('exit', (code) => resolve(code ?? 1)));
}

// ---- graceful switches
async function switches(n: number): Promise<{ ms: number[]; gapMs: number[]; quietMs: number[]; failed: number; retried: number; requests: number }> {
  const out = { ms: [] as number[], gapMs: [] as number[], quietMs: [] as number[], failed: 0, retried: 0, requests: 0 };
  for (let i = 0; i < n; i++) {
    const l = await leaderIndex();
    if (l < 0) throw new Error('no single leader before a switch');
    // the same length of window without a switch: the load's own gaps
    const [oldName, newName] = [await nameOf(l), await nameOf(1 - l)];
    const q0 = now();
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const t0 = now();
    const code = await run([o.sampan!, '--host', `unix://${managers[1 - l]!.socket}`, 'cluster', 'switch']);
    if (code !== 0) throw new Error(`sampan cluster switch exited ${code}`);
    await until(async () => (await leaderIndex()) === 1 - l, 15_000, 'the standby leads after the switch');
    const t1 = now();
    const span = t1 - t0 + 1000;
    out.quietMs.push(maxGap(q0, q0 + Math.min(span, SETTLE_MS)));
    await new Promise((r) => setTimeout(r, 1000));
    out.gapMs.push(maxGap(t0 - 200, t1 + 1000));
    const h = handover(oldName, newName, t0 - 1000);
    if (h === undefined) throw new Error('the answers do not show the switch (no X-Sampan-Manager?)');
    out.ms.push(h);
    const t = touched(t0, t1 + 1000);
    out.failed += t.failed;
    out.retried += t.retried;
    out.requests += t.requests;
  }
  return out;
}

// ---- crashes
async function crashes(n: number): Promise<{ ms: number[]; failed: number; retried: number; requests: number }> {
  const out = { ms: [] as number[], failed: 0, retried: 0, requests: 0 };
  for (let i = 0; i < n; i++) {
    const l = await leaderIndex();
    if (l < 0) throw new Error('no single leader before a crash');
    const argv = (await fs.readFile(`/proc/${pids[l]}/cmdline`, 'utf8')).split('\0').filter(Boolean);
    const t0 = now();
    process.kill(pids[l]!, 'SIGKILL');
    await until(async () => recs.some((r) => r.op === 'create' && r.ok && r.done > t0), 30_000, 'a write after the crash');
    const first = Math.min(...recs.filter((r) => r.op === 'create' && r.ok && r.done > t0).map((r) => r.done));
    out.ms.push(first - t0);
    await until(async () => (await leaderIndex()) === 1 - l, 15_000, 'the standby leads after the crash');
    const t1 = now();
    // the killed manager again, as the testbed started it: it rejoins as the standby
    const fd = openSync(path.join(o.testbed!, 'managers', managers[l]!.name, 'manager.log'), 'a');
    const p = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', fd, fd], detached: true });
    closeSync(fd);
    restarted.push(p);
    pids[l] = p.pid!;
    await until(async () => {
      const s = await onSocket(managers[l]!.socket!, '/sampan/v1/manager').catch(() => undefined);
      const v = s && s.status === 200 ? (JSON.parse(s.body) as { role: string; joined: number }) : undefined;
      return v?.role === 'standby' && v.joined >= 1;
    }, 60_000, 'the restarted manager is the standby');
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const t = touched(t0, t1 + 1000);
    out.failed += t.failed;
    out.retried += t.retried;
    out.requests += t.requests;
  }
  return out;
}

// ---- every create answered 201 exists exactly once, on the engines themselves
async function verify(): Promise<{ created: number; onEngines: number; lost: number; duplicated: number; orphans: number }> {
  const seen = new Map<string, number>();
  for (const h of tb.hosts) {
    const filters = encodeURIComponent(JSON.stringify({ name: ['^/?ha-'] }));
    const r = await onSocket(h.socket, `/v1.44/containers/json?all=1&filters=${filters}`, 30_000);
    for (const c of JSON.parse(r.body) as Array<{ Names: string[] }>) {
      const n = c.Names[0]!.replace(/^\//, '');
      if (/^ha-\d+$/.test(n)) seen.set(n, (seen.get(n) ?? 0) + 1);
    }
  }
  const ok = new Set(created);
  return {
    created: ok.size, onEngines: seen.size,
    lost: [...ok].filter((n) => !seen.has(n)).length,
    duplicated: [...seen.values()].filter((k) => k > 1).length,
    orphans: [...seen.keys()].filter((n) => !ok.has(n)).length,
  };
}

// ---- etcd's own election, the floor
async function etcdElections(rounds: number): Promise<number[]> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sampan-ha-etcd-'));
  const etcd = await EtcdCluster.start({ dir, members: 3 });
  const status = async (url: string) => {
    const r = await fetch(`${url}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(500) }).then((x) => x.json() as Promise<{ header?: { member_id?: string }; leader?: string }>).catch(() => undefined);
    return r ? { id: r.header?.member_id ?? '', leader: r.leader ?? '0' } : undefined;
  };
  const out: number[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      const members = etcd.info;
      const st = await Promise.all(members.map((m) => status(m.endpoint)));
      const leaderId = st.find((s) => s && s.leader !== '0')?.leader;
      const k = st.findIndex((s) => s?.id === leaderId);
      if (k < 0) throw new Error('etcd: no leader');
      const t0 = now();
      await etcd.stopMember(members[k]!.name, { kill: true });
      const rest = members.filter((_, j) => j !== k);
      await until(async () => (await Promise.all(rest.map((m) => status(m.endpoint)))).some((s) => s && s.leader !== '0' && s.leader !== leaderId), 30_000, 'a new etcd leader');
      out.push(now() - t0);
      await etcd.restartMember(members[k]!.name);
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    await etcd.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
  return out;
}

const result: Record<string, unknown> = { rate: RATE };
const started = now();
const loading = load();
try {
  await new Promise((r) => setTimeout(r, 3000));
  const sw = await switches(Number(o.switches));
  result.graceful = { ...summary(sw.ms), gapMs: summary(sw.gapMs), quietGapMs: summary(sw.quietMs), failed: sw.failed, retried: sw.retried, requests: sw.requests };
  const cr = await crashes(Number(o.crashes));
  result.crash = { ...summary(cr.ms), failed: cr.failed, retried: cr.retried, requests: cr.requests };
} finally {
  loadOn = false;
  await loading;
  await Promise.all([...inflight]);
}
const seconds = (now() - started) / 1000;
result.load = {
  seconds: Math.round(seconds), requests: recs.length, perSec: Math.round((recs.length / seconds) * 10) / 10,
  byOp: Object.fromEntries((['ps', 'inspect', 'create'] as Op[]).map((op) => [op, recs.filter((r) => r.op === op).length])),
  failed: recs.filter((r) => !r.ok).length, retried: recs.filter((r) => r.attempts > 1).length,
  conflictAfterRetry: recs.filter((r) => r.conflictAfterRetry).length,
  latencyMs: summary(recs.filter((r) => r.ok).map((r) => r.done - r.sent)),
};
result.writes = await verify();
result.etcdElectionMs = summary(await etcdElections(Number(o['etcd-rounds'])));
for (const p of restarted) p.kill('SIGTERM');
agent.destroy();
process.stdout.write(`${JSON.stringify(result)}\n`);
