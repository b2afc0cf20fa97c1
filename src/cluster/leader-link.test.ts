import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { isCode } from '../lib/errors.js';
import { silentLogger } from '../lib/log.js';
import { mtlsServerOptions } from '../lib/tls.js';
import { Election } from './election.js';
import { EtcdCluster } from './etcd.js';
import { Forwarder } from './forward.js';
import { answerLink, isRefusal, LeaderLink, LINK_PATH } from './leader-link.js';
import { ClusterStore, type NodeRecord } from './store.js';
import { makeCa, makeCert } from './testbed/certs.js';

const node = (id: string): NodeRecord => ({
  id, name: `n-${id}`, labels: {}, api: 'unix:///x.sock', addr: '10.0.0.2', capacity: { ncpu: 2, memTotal: 1024 }, version: '0.1.0', joinedAt: '2026-01-01T00:00:00Z', state: 'up',
});

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const dial = (api: string) => new Promise<Duplex>((resolve, reject) => {
  const s = net.connect(api.slice(7));
  s.once('connect', () => resolve(s));
  s.once('error', reject);
});

test('a refusal is ECONNREFUSED or ENOENT; a timeout or a reset is not', () => {
  const e = (code: string) => Object.assign(new Error(code), { code });
  assert.ok(isRefusal(e('ECONNREFUSED')));
  assert.ok(isRefusal(e('ENOENT')));
  for (const c of ['ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH']) assert.ok(!isRefusal(e(c)), c);
});

test('liveness link on a real etcd: a dropped link that reconnects deposes nobody; a leader whose API refuses is deposed, steps down, writes nothing, and stands again as a standby', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'splink-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const etcd = await EtcdCluster.start({ dir, members: 1 });
  t.after(() => etcd.stop());

  interface M { e: Election; store: ClusterStore; server: http.Server; sock: string; link: LeaderLink; deposed: number; conns: Set<net.Socket> }
  const managers: M[] = [];
  const listen = async (m: M) => {
    m.server = http.createServer((req, res) => {
      if (req.url === LINK_PATH) answerLink(res, m.e.role === 'leader', m.e.me.name);
      else res.writeHead(404).end();
    });
    m.server.on('connection', (s: net.Socket) => {
      m.conns.add(s);
      s.once('close', () => m.conns.delete(s));
    });
    await new Promise<void>((r) => m.server.listen(m.sock, r));
  };
  const start = async (name: string) => {
    const m = { store: ClusterStore.connect(etcd.endpoints, 'lk'), sock: path.join(dir, `${name}.sock`), deposed: 0, conns: new Set() } as unknown as M;
    m.link = new LeaderLink(dial, (target) => void m.e.depose(target.name, target.lease).then((ok) => ok && m.deposed++), silentLogger);
    m.e = new Election(etcd.endpoints, 'lk', { name, api: `unix://${m.sock}`, version: '1.0.0' }, 2, m.store, silentLogger, {
      onData: () => undefined, onLead: () => undefined, onOutranked: () => undefined,
      onChange: () => m.link?.follow(m.e.linkTarget()),
    });
    await listen(m);
    await m.e.follow();
    await m.e.campaign();
    managers.push(m);
    return m;
  };
  t.after(async () => {
    for (const m of managers) {
      m.link.close();
      m.server.close();
      for (const s of m.conns) s.destroy();
      await m.e.close();
      m.store.close();
    }
  });
  const leaders = () => managers.filter((m) => m.e.role === 'leader').map((m) => m.e.me.name);

  const a = await start('a');
  await until('a leads', () => a.e.role === 'leader');
  const b = await start('b');
  await until('b links to a', () => b.link.linkedTo === 'a');
  assert.equal(a.link.linkedTo, undefined, 'the leader links to nobody');

  // the connection drops but a's API still answers (a proxy restarted, say): b links again, nobody is deposed
  for (const s of a.conns) s.destroy();
  await until('b links to a again', () => b.link.linkedTo === 'a' && a.conns.size > 0);
  assert.equal(b.deposed, 0);
  assert.deepEqual(leaders(), ['a']);

  // a lives on but its API refuses (it restarted its listener): b revokes a's lease; a finds its key gone and steps down
  const fence = a.store.guard;
  await new Promise<void>((r) => {
    a.server.close(() => r());
    for (const s of a.conns) s.destroy();
  });
  await until('b leads', () => b.e.role === 'leader');
  assert.equal(b.deposed, 1);
  await until('a steps down', () => a.e.role === 'standby');
  assert.deepEqual(leaders(), ['b'], 'never two leaders');
  // whatever a still tried as the leader it was, etcd refuses
  a.store.guard = fence;
  await assert.rejects(a.store.putNode(node('1')), (err: unknown) => isCode(err, 'UNAVAILABLE'), 'the deposed leader writes nothing');
  await b.store.putNode(node('2'));
  // a stands again (a new lease, at the end of the line) and links to b as any standby does
  await listen(a);
  await until('a stands again behind b', () => a.e.candidates.map((c) => c.name).join() === 'b,a');
  await until('a links to b', () => a.link.linkedTo === 'b');
  assert.deepEqual(leaders(), ['b']);
});

test('liveness link over tcp:// with mutual TLS: a dropped connection to a listening leader relinks; a refused reconnect calls it dead', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'splinktls-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const ca = await makeCa(path.join(dir, 'ca'), 'link-ca');
  const leaderTls = await makeCert(ca, path.join(dir, 'leader'), 'leader', ['127.0.0.1']);
  const standbyTls = await makeCert(ca, path.join(dir, 'standby'), 'standby', []);
  const server = https.createServer(await mtlsServerOptions(leaderTls), (req, res) => (req.url === LINK_PATH ? answerLink(res, true, 'leader') : res.writeHead(404).end()));
  const conns = new Set<net.Socket>();
  server.on('secureConnection', (s: net.Socket) => {
    conns.add(s);
    s.once('close', () => conns.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const api = `tcp://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  const dead: string[] = [];
  const link = new LeaderLink((a) => new Forwarder(() => Promise.resolve(undefined), silentLogger, standbyTls).dial(a), (target, err) => dead.push(`${target.name}: ${err}`), silentLogger);
  t.after(() => {
    link.close();
    server.close();
  });
  link.follow({ name: 'leader', api, lease: '1' });
  await until('linked', () => link.linkedTo === 'leader');
  for (const s of conns) s.destroy();
  await until('linked again', () => link.linkedTo === 'leader' && conns.size > 0);
  assert.deepEqual(dead, []);
  await new Promise<void>((r) => {
    server.close(() => r());
    for (const s of conns) s.destroy();
  });
  await until('called dead', () => dead.length > 0);
  assert.match(dead[0]!, /^leader: .*ECONNREFUSED/);
  assert.equal(link.linkedTo, undefined);
});
