/**
 * `sampan p2p scheduler` as a process on a loopback port, driven over its HTTP API: seeds and parents,
 * progress and back-to-source, bad input, /metrics, a restart that loses everything (peers announce again),
 * and preheat jobs against a real `sampan registry` (open, token auth, an index), with fake peers that take
 * the PeerPreheatRequest, fetch the blob as a seed would and report to the scheduler.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { SAMPAN, freePort, runCmd, sleep, until } from '../harness.js';
import { OCI_INDEX, OCI_MANIFEST, TestRegistry } from '../registry/harness.js';
import { pieceCount, pieceSizeFor, type AnnounceResponse, type PeerPreheatRequest, type PreheatJob, type ProgressResponse, type TaskMeta } from '../../src/p2p/protocol.js';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const T1 = sha('task one');
const T2 = sha('task two');
const T3 = sha('task three');
const MiB = 1 << 20;

interface Res {
  status: number;
  text: string;
  headers: Headers;
  json<T = any>(): T; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** A scheduler process; restartable on the same port. */
class Scheduler {
  proc?: ChildProcess;
  log = '';
  constructor(
    readonly port: number,
    readonly args: string[],
  ) {}

  static async start(args: string[] = []): Promise<Scheduler> {
    const s = new Scheduler(await freePort(), args);
    await s.launch();
    return s;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async launch(): Promise<void> {
    const proc = spawn(SAMPAN, ['p2p', 'scheduler', '--listen', `127.0.0.1:${this.port}`, ...this.args], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    proc.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    for (let i = 0; i < 150; i++) {
      if (await fetch(`${this.url}/healthz`).then((r) => r.ok, () => false)) return;
      if (proc.exitCode !== null) break;
      await sleep(100);
    }
    throw new Error(`scheduler did not come up:\n${this.log}`);
  }

  /** SIGTERM; the exit code. */
  async stop(): Promise<number | null> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return p?.exitCode ?? null;
    const gone = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
    p.kill('SIGTERM');
    return gone;
  }

  async req(method: string, p: string, body?: unknown): Promise<Res> {
    const res = await fetch(`${this.url}${p}`, {
      method,
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
    });
    const text = await res.text();
    return { status: res.status, text, headers: res.headers, json: () => JSON.parse(text) };
  }

  announce(task: string, peerId: string, extra: Record<string, unknown> = {}): Promise<Res> {
    return this.req('POST', `/api/v1/tasks/${task}/announce`, { peerId, addr: `http://127.0.0.1:1/${peerId}`, url: `http://127.0.0.1:5000/v2/x/blobs/${task}`, uploadSlots: 4, ...extra });
  }

  progress(task: string, peerId: string, body: Record<string, unknown>): Promise<Res> {
    return this.req('POST', `/api/v1/tasks/${task}/peers/${peerId}/progress`, body);
  }

  async metric(name: string): Promise<number> {
    const text = (await this.req('GET', '/metrics')).text;
    const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(name + ' '));
    return line ? Number(line.split(' ').pop()) : NaN;
  }
}

const meta = (n: number, known = n): TaskMeta => ({ size: n * MiB, pieceSize: MiB, pieceDigests: Array.from({ length: known }, (_, i) => sha(`p${i}`).slice(7)) });
const errCode = (r: Res) => (r.json() as { error?: { code: string } }).error?.code;

describe('p2p scheduler: the task API', () => {
  let s: Scheduler;
  before(async () => {
    s = await Scheduler.start(['--seed-stall-seconds', '1', '--back-to-source-limit', '1', '--parents', '3']);
  });
  after(async () => {
    await s?.stop();
  });

  it('--help on the commands', async () => {
    const r = await runCmd(SAMPAN, ['p2p', 'scheduler', '--help']);
    assert.equal(r.code, 0);
    for (const f of ['--listen', '--parents', '--seed-stall-seconds', '--back-to-source-limit', '--insecure-registry', '--config', '--log-level']) assert.ok(r.stdout.includes(f), f);
    assert.match((await runCmd(SAMPAN, ['p2p', '--help'])).stdout, /scheduler/);
  });

  it('seed, children, pieces, finish, leave: through HTTP', async () => {
    const a = await s.announce(T1, 'seed', { zone: 'z1' });
    assert.equal(a.status, 200, a.text);
    assert.deepEqual(a.json<AnnounceResponse>(), { role: 'seed', parents: [] });
    const b = await s.announce(T1, 'kid', { zone: 'z1' });
    assert.deepEqual(b.json<AnnounceResponse>(), { role: 'child', parents: [{ peerId: 'seed', addr: 'http://127.0.0.1:1/seed', zone: 'z1' }] });
    let r = await s.progress(T1, 'seed', { meta: meta(4, 2), pieces: [0, 1] });
    assert.equal(r.status, 200, r.text);
    // the path's task id may come percent-encoded
    r = await s.req('POST', `/api/v1/tasks/${encodeURIComponent(T1)}/peers/kid/progress`, { pieces: [0] });
    assert.equal(r.status, 200, r.text);
    const pr = r.json<ProgressResponse>();
    assert.deepEqual(pr.meta, meta(4, 2));
    assert.deepEqual(pr.parents.map((p) => p.peerId), ['seed']);
    const view = (await s.req('GET', `/api/v1/tasks/${T1}`)).json<{ peers: Array<{ peerId: string; role: string; pieces: number; children: number; finished: boolean }> }>();
    assert.deepEqual(
      view.peers.map((p) => [p.peerId, p.role, p.pieces, p.children, p.finished]),
      [
        ['seed', 'seed', 2, 1, false],
        ['kid', 'child', 1, 0, false],
      ],
    );
    assert.equal((await s.progress(T1, 'seed', { meta: meta(4), pieces: [2, 3], finished: true })).status, 200);
    const late = await s.announce(T1, 'late');
    assert.deepEqual(new Set(late.json<AnnounceResponse>().parents.map((p) => p.peerId)), new Set(['seed', 'kid']));
    assert.deepEqual(late.json<AnnounceResponse>().meta, meta(4));
    assert.deepEqual((await s.progress(T1, 'kid', { finished: true })).json<ProgressResponse>().parents, []);
    assert.equal((await s.req('DELETE', `/api/v1/tasks/${T1}/peers/kid`)).status, 204);
    assert.equal((await s.req('DELETE', `/api/v1/tasks/${T1}/peers/kid`)).status, 404);
    assert.ok(!(await s.req('GET', `/api/v1/tasks/${T1}`)).json<{ peers: Array<{ peerId: string }> }>().peers.some((p) => p.peerId === 'kid'));
  });

  it('a seed that stalls: one child (the limit) is told to go to the upstream', async () => {
    await s.announce(T2, 'slow-seed');
    await s.announce(T2, 'k1');
    await s.announce(T2, 'k2');
    await s.progress(T2, 'slow-seed', { meta: meta(8, 1), pieces: [0] });
    assert.equal((await s.progress(T2, 'k1', {})).json<ProgressResponse>().backToSource, undefined);
    await sleep(1100);
    assert.equal((await s.progress(T2, 'k1', {})).json<ProgressResponse>().backToSource, true);
    await sleep(1100);
    assert.equal((await s.progress(T2, 'k2', {})).json<ProgressResponse>().backToSource, undefined, 'the limit is 1');
    assert.equal(await s.metric('sampan_p2p_scheduler_back_to_source_total'), 1);
  });

  it('bad input is 400, unknown things 404, a wrong method 405: JSON errors', async () => {
    const cases: Array<[Promise<Res>, number, string]> = [
      [s.announce('sha256:nothex', 'p'), 400, 'INVALID_ARGUMENT'],
      [s.announce('md5:abc', 'p'), 400, 'INVALID_ARGUMENT'],
      [s.announce(T3, 'bad id with spaces'), 400, 'INVALID_ARGUMENT'],
      [s.announce(T3, 'p', { uploadSlots: -1 }), 400, 'INVALID_ARGUMENT'],
      [s.announce(T3, 'p', { url: 'ftp://x/y' }), 400, 'INVALID_ARGUMENT'],
      [s.announce(T3, 'p', { meta: { size: 10, pieceSize: 4, pieceDigests: ['a', 'b'] } }), 400, 'INVALID_ARGUMENT'],
      [s.req('POST', `/api/v1/tasks/${T3}/announce`, '{not json'), 400, 'INVALID_ARGUMENT'],
      [s.req('POST', `/api/v1/tasks/${T3}/announce`), 400, 'INVALID_ARGUMENT'],
      [s.progress(T3, 'nobody', {}), 404, 'NOT_FOUND'],
      [s.progress(T1, 'seed', { failed: [{ piece: 0, parent: 'x', reason: 'bored' }] }), 400, 'INVALID_ARGUMENT'],
      [s.progress(T1, 'seed', { pieces: [99] }), 400, 'INVALID_ARGUMENT'],
      [s.req('GET', `/api/v1/tasks/${T3}`), 404, 'NOT_FOUND'],
      [s.req('GET', '/api/v1/preheat/nope'), 404, 'NOT_FOUND'],
      [s.req('GET', '/api/v2/whatever'), 404, 'NOT_FOUND'],
      [s.req('PUT', '/api/v1/peers', {}), 405, 'METHOD_NOT_ALLOWED'],
      [s.req('POST', '/api/v1/peers', { peerId: 'p', addr: 'not a url', uploadSlots: 1 }), 400, 'INVALID_ARGUMENT'],
      [s.req('POST', '/api/v1/preheat', { zone: 'z1' }), 400, 'INVALID_ARGUMENT'],
      [s.req('POST', '/api/v1/preheat', { image: 'app/Web:x' }), 400, 'INVALID_ARGUMENT'],
      [s.req('POST', '/api/v1/preheat', { image: '127.0.0.1:1/a:b', authorization: 'Digest x' }), 400, 'INVALID_ARGUMENT'],
    ];
    for (const [p, status, code] of cases) {
      const r = await p;
      assert.equal(r.status, status, r.text);
      assert.equal(errCode(r), code, r.text);
      assert.equal(typeof r.json<{ error: { message: string } }>().error.message, 'string');
    }
  });

  it('/healthz and /metrics', async () => {
    assert.equal((await s.req('GET', '/healthz')).status, 200);
    assert.equal((await s.req('POST', '/api/v1/peers', { peerId: 'reg1', addr: 'http://127.0.0.1:9', zone: 'z9', uploadSlots: 2 })).status, 200);
    const m = await s.req('GET', '/metrics');
    assert.match(m.headers.get('content-type') ?? '', /text\/plain/);
    for (const name of [
      'sampan_p2p_scheduler_peers',
      'sampan_p2p_scheduler_tasks_active',
      'sampan_p2p_scheduler_announces_total{role="seed"}',
      'sampan_p2p_scheduler_announces_total{role="child"}',
      'sampan_p2p_scheduler_parents_assigned_total',
      'sampan_p2p_scheduler_back_to_source_total',
      'sampan_p2p_scheduler_preheat_jobs{state="done"}',
      'sampan_p2p_scheduler_failed_pieces_total{reason="digest"}',
    ]) {
      assert.ok(Number.isFinite(await s.metric(name)), `${name} missing:\n${m.text.slice(0, 3000)}`);
    }
    assert.ok((await s.metric('sampan_p2p_scheduler_peers')) >= 5);
    assert.equal(await s.metric('sampan_p2p_scheduler_tasks_active'), 2);
    assert.ok((await s.metric('sampan_p2p_scheduler_parents_assigned_total')) >= 3);
    await s.progress(T1, 'late', { failed: [{ piece: 1, parent: 'seed', reason: 'digest' }] });
    assert.equal(await s.metric('sampan_p2p_scheduler_failed_pieces_total{reason="digest"}'), 1);
  });
});

describe('p2p scheduler: restart', () => {
  it('SIGTERM stops it cleanly; after a restart peers announce again with what they hold and carry on', async () => {
    const s = await Scheduler.start();
    try {
      await s.announce(T1, 'seed');
      await s.announce(T1, 'half');
      await s.progress(T1, 'seed', { meta: meta(6), pieces: [0, 1, 2, 3, 4, 5], finished: true });
      await s.progress(T1, 'half', { pieces: [0, 1, 2] });
      assert.equal(await s.stop(), 0);
      assert.match(s.log, /p2p scheduler stopped/);
      await s.launch();
      // the state is gone: a progress report is answered 404, the peer's cue to announce again
      const lost = await s.progress(T1, 'half', { pieces: [3] });
      assert.equal(lost.status, 404);
      const half = await s.announce(T1, 'half', { pieces: [0, 1, 2, 3] });
      assert.equal(half.status, 200, half.text);
      // the first to come back seeds the task again (it holds pieces; the peer knows where to get the rest)
      assert.equal(half.json<AnnounceResponse>().role, 'seed');
      const seed = await s.announce(T1, 'seed', { finished: true, pieces: [0, 1, 2, 3, 4, 5], meta: meta(6) });
      assert.equal(seed.json<AnnounceResponse>().role, 'child');
      const fresh = (await s.announce(T1, 'fresh')).json<AnnounceResponse>();
      assert.deepEqual(fresh.meta, meta(6));
      assert.equal(fresh.parents[0]!.peerId, 'seed', 'the finished peer first');
      const r = await s.progress(T1, 'half', { pieces: [4] });
      assert.equal(r.status, 200);
      assert.deepEqual(r.json<ProgressResponse>().parents.map((p) => p.peerId), ['seed']);
      const view = (await s.req('GET', `/api/v1/tasks/${T1}`)).json<{ peers: Array<{ peerId: string; pieces: number; finished: boolean }> }>();
      assert.deepEqual(
        view.peers.map((p) => [p.peerId, p.pieces, p.finished]),
        [
          ['half', 5, false],
          ['seed', 6, true],
          ['fresh', 0, false],
        ],
      );
    } finally {
      await s.stop();
    }
  });
});

// ---------- preheat ----------

/** A stand-in for `sampan p2p peer`: takes preheat requests, fetches the blob as a seed, reports to the scheduler. */
class FakePeer {
  readonly got: PeerPreheatRequest[] = [];
  readonly fetched = new Map<string, string>();
  private server?: http.Server;
  addr = '';

  constructor(
    readonly id: string,
    readonly zone: string,
    readonly scheduler: Scheduler,
  ) {}

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method === 'POST' && req.url === '/p2p/v1/preheat') {
          const body = JSON.parse(Buffer.concat(chunks).toString()) as PeerPreheatRequest;
          this.got.push(body);
          res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify({ taskId: body.taskId }));
          void this.seed(body).catch((err: unknown) => this.fetched.set(body.taskId, `error: ${(err as Error).message}`));
          return;
        }
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"NOT_FOUND","message":"no"}}');
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.addr = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
    const reg = await this.scheduler.req('POST', '/api/v1/peers', { peerId: this.id, addr: this.addr, zone: this.zone, uploadSlots: 4 });
    assert.equal(reg.status, 200, reg.text);
  }

  /** As a seed: announce, fetch from the registry (answering a Bearer challenge with the credentials), report. */
  private async seed(r: PeerPreheatRequest): Promise<void> {
    const ann = await this.scheduler.req('POST', `/api/v1/tasks/${r.taskId}/announce`, { peerId: this.id, addr: this.addr, zone: this.zone, url: r.url, uploadSlots: 4 });
    if (ann.status !== 200) throw new Error(`announce: ${ann.status} ${ann.text}`);
    let res = await fetch(r.url, { headers: r.authorization ? { authorization: r.authorization } : {} });
    const challenge = res.headers.get('www-authenticate') ?? '';
    if (res.status === 401 && /^Bearer /i.test(challenge)) {
      const p = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
      const q = new URLSearchParams({ service: p.service ?? '', scope: p.scope ?? '' });
      const tok = (await (await fetch(`${p.realm}?${q}`, { headers: r.authorization ? { authorization: r.authorization } : {} })).json()) as { token: string };
      res = await fetch(r.url, { headers: { authorization: `Bearer ${tok.token}` } });
    }
    if (!res.ok) throw new Error(`GET ${r.url}: ${res.status}`);
    const bytes = Buffer.from(await res.arrayBuffer());
    this.fetched.set(r.taskId, sha(bytes));
    const pieceSize = pieceSizeFor(bytes.length);
    const n = pieceCount(bytes.length, pieceSize);
    const digests = Array.from({ length: n }, (_, i) => sha(bytes.subarray(i * pieceSize, (i + 1) * pieceSize)).slice(7));
    const p = await this.scheduler.progress(r.taskId, this.id, { meta: { size: bytes.length, pieceSize, pieceDigests: digests }, pieces: [...Array(n).keys()], finished: true });
    if (p.status !== 200) throw new Error(`progress: ${p.status} ${p.text}`);
  }

  close(): void {
    this.server?.closeAllConnections();
    this.server?.close();
  }
}

async function waitJob(s: Scheduler, id: string, timeoutMs = 20_000): Promise<PreheatJob> {
  return until<PreheatJob | undefined>(async () => {
    const j = (await s.req('GET', `/api/v1/preheat/${id}`)).json<PreheatJob>();
    return j.state === 'done' || j.state === 'failed' ? j : undefined;
  }, timeoutMs) as Promise<PreheatJob>;
}

describe('p2p scheduler: preheat', () => {
  let work: string;
  let reg: TestRegistry;
  let tok: TestRegistry;
  let s: Scheduler;
  const peers: FakePeer[] = [];

  before(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'sp2ps-'));
    const htpasswd = path.join(work, 'htpasswd');
    await fs.writeFile(htpasswd, execFileSync('htpasswd', ['-Bbn', 'alice', 'wonderland']).toString());
    [reg, tok, s] = await Promise.all([
      TestRegistry.start(),
      TestRegistry.start({ args: ['--auth', 'token', '--htpasswd', htpasswd, '--auth-service', 'sampan-test'] }),
      Scheduler.start(),
    ]);
    for (const [id, zone] of [
      ['za1', 'z1'],
      ['za2', 'z1'],
      ['za3', 'z1'],
      ['zb1', 'z2'],
    ] as const) {
      const p = new FakePeer(id, zone, s);
      await p.start();
      peers.push(p);
    }
  });

  after(async () => {
    for (const p of peers) p.close();
    await s?.stop();
    await Promise.all([reg?.cleanup(), tok?.cleanup()]);
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('resolves the image at the registry and puts each blob on 2 seeds of the zone, round-robin', async () => {
    const img = await reg.pushImage('app/web', '2.0');
    const r = await s.req('POST', '/api/v1/preheat', { image: `${reg.hostPort}/app/web:2.0`, zone: 'z1' });
    assert.equal(r.status, 202, r.text);
    const created = r.json<PreheatJob>();
    assert.equal(r.headers.get('location'), `/api/v1/preheat/${created.id}`);
    assert.equal(created.image, `${reg.hostPort}/app/web:2.0`);
    assert.equal(created.zone, 'z1');
    const job = await waitJob(s, created.id);
    assert.equal(job.state, 'done', JSON.stringify(job));
    assert.deepEqual(job.blobs.map((b) => b.digest).sort(), [img.config, img.layer].sort());
    assert.equal(job.blobs.find((b) => b.digest === img.layer)!.size, img.layerBytes.length);
    for (const b of job.blobs) {
      assert.equal(b.state, 'done');
      assert.equal(b.peers.length, 2);
      assert.ok(b.peers.every((p) => p.startsWith('za')), `${b.peers} are not all in z1`);
    }
    // the two blobs did not go to the same pair: the zone's three peers share them
    assert.equal(new Set(job.blobs.flatMap((b) => b.peers)).size, 3);
    assert.equal(peers.find((p) => p.id === 'zb1')!.got.length, 0, 'a peer of another zone got a blob');
    const reqs = peers.flatMap((p) => p.got);
    assert.equal(reqs.length, 4);
    for (const q of reqs) {
      assert.equal(q.url, `http://${reg.hostPort}/v2/app/web/blobs/${q.taskId}`);
      assert.equal(q.authorization, undefined);
    }
    // the fake seeds really got the right bytes with that URL (a blob is done once one of its two seeds finished:
    // the other may still be fetching)
    await until(async () => peers.every((p) => p.got.every((q) => p.fetched.has(q.taskId))) || undefined);
    for (const p of peers) for (const q of p.got) assert.equal(p.fetched.get(q.taskId), q.taskId);
    assert.equal(await s.metric('sampan_p2p_scheduler_preheat_jobs{state="done"}'), 1);
  });

  it('an index: the linux/amd64 image\'s blobs only', async () => {
    const amd = await reg.pushImage('app/multi', 'amd64', 'amd');
    const arm = await reg.pushImage('app/multi', 'arm64', 'arm');
    const index = {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI_MANIFEST, digest: arm.digest, size: arm.manifest.length, platform: { os: 'linux', architecture: 'arm64' } },
        { mediaType: OCI_MANIFEST, digest: amd.digest, size: amd.manifest.length, platform: { os: 'linux', architecture: 'amd64' } },
      ],
    };
    await reg.pushManifest('app/multi', 'latest', index, OCI_INDEX);
    const r = await s.req('POST', '/api/v1/preheat', { image: `${reg.hostPort}/app/multi`, zone: 'z2' });
    assert.equal(r.status, 202, r.text);
    const job = await waitJob(s, r.json<PreheatJob>().id);
    assert.equal(job.state, 'done', JSON.stringify(job));
    assert.deepEqual(job.blobs.map((b) => b.digest).sort(), [amd.config, amd.layer].sort());
    // one peer in z2: it takes every blob
    assert.ok(job.blobs.every((b) => b.peers.length === 1 && b.peers[0] === 'zb1'));
  });

  it('a registry with token auth: the scheduler gets a token with the Basic credentials given; the seeds get them too', async () => {
    // push with a token of alice's
    const c = /realm="([^"]+)",service="([^"]+)"/.exec((await tok.req('GET', '/v2/')).headers['www-authenticate'] as string)!;
    const basic = `Basic ${Buffer.from('alice:wonderland').toString('base64')}`;
    const t = (await (await fetch(`${c[1]}?service=${c[2]}&scope=repository:priv/app:pull,push`, { headers: { authorization: basic } })).json()) as { token: string };
    const layer = Buffer.from('a private layer '.repeat(100));
    const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(layer)] } }));
    for (const b of [layer, cfg]) {
      const up = await fetch(`${tok.base}/v2/priv/app/blobs/uploads/?digest=${sha(b)}`, { method: 'POST', body: b, headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/octet-stream' } });
      assert.equal(up.status, 201);
    }
    const manifest = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(cfg), size: cfg.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(layer), size: layer.length }] };
    const put = await fetch(`${tok.base}/v2/priv/app/manifests/1`, { method: 'PUT', body: JSON.stringify(manifest), headers: { authorization: `Bearer ${t.token}`, 'content-type': OCI_MANIFEST } });
    assert.equal(put.status, 201);

    // no credentials: the job fails, saying why
    const anon = await s.req('POST', '/api/v1/preheat', { image: `${tok.hostPort}/priv/app:1`, zone: 'z1' });
    const failed = await waitJob(s, anon.json<PreheatJob>().id);
    assert.equal(failed.state, 'failed');
    assert.match(failed.error ?? '', /unauthorized|authentication/i);

    const r = await s.req('POST', '/api/v1/preheat', { image: `${tok.hostPort}/priv/app:1`, zone: 'z1', authorization: basic });
    const job = await waitJob(s, r.json<PreheatJob>().id);
    assert.equal(job.state, 'done', JSON.stringify(job));
    assert.deepEqual(job.blobs.map((b) => b.digest).sort(), [sha(cfg), sha(layer)].sort());
    const reqs = peers.flatMap((p) => p.got).filter((q) => q.taskId === sha(layer));
    assert.ok(reqs.length >= 1 && reqs.every((q) => q.authorization === basic && q.url === `http://${tok.hostPort}/v2/priv/app/blobs/${sha(layer)}`));
    assert.ok(!s.log.includes('wonderland') && !s.log.includes(basic.slice(6)), 'credentials in the log');
  });

  it('a tag the registry does not have, or no peer in the zone: the job fails with the reason', async () => {
    const r = await s.req('POST', '/api/v1/preheat', { image: `${reg.hostPort}/app/web:nope`, zone: 'z1' });
    const job = await waitJob(s, r.json<PreheatJob>().id);
    assert.equal(job.state, 'failed');
    assert.match(job.error ?? '', /manifest unknown/);
    const r2 = await s.req('POST', '/api/v1/preheat', { image: `${reg.hostPort}/app/web:2.0`, zone: 'mars' });
    const job2 = await waitJob(s, r2.json<PreheatJob>().id);
    assert.equal(job2.state, 'failed');
    assert.match(job2.error ?? '', /no peers registered in zone mars/);
    assert.ok((await s.metric('sampan_p2p_scheduler_preheat_jobs{state="failed"}')) >= 3);
  });
});
