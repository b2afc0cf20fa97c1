import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { P2pRig } from './harness.js';
import { SAMPAN, TestEngine, freePort, runCmd, until } from '../harness.js';

const rigs: P2pRig[] = [];
const rig = async (o?: { scheduler?: boolean }) => {
  const r = await P2pRig.start(o);
  rigs.push(r);
  return r;
};
after(async () => {
  for (const r of rigs) await r.stop();
});
const MiB = 1024 * 1024;

test('a blob pulled by many peers at once leaves the registry once; every copy has the right digest', async () => {
  const r = await rig();
  const blob = await r.pushBlob('app/big', 24 * MiB);
  const peers = await Promise.all([...Array(6).keys()].map(() => r.startPeer()));
  const got = await Promise.all(peers.map((p) => p.pull('app/big', blob.digest)));
  for (const g of got) assert.deepEqual(g, { digest: blob.digest, size: blob.data.length });
  const st = await runCmd(SAMPAN, ['p2p', 'status', '--peer', `http://127.0.0.1:${peers[0]!.peerPort}`]);
  assert.match(st.stdout, new RegExp(`${blob.digest.slice(7, 19)}.*\\b(\\d+)/\\1\\b.*complete`));
  assert.ok(r.proxy.blobBytes <= 1.1 * blob.data.length, `the registry sent ${r.proxy.blobBytes} bytes for a ${blob.data.length}-byte blob`);
  const fromPeers = (await Promise.all(peers.map((p) => p.metric('sampan_p2p_peer_bytes_received_total{source="peer"}')))).reduce((a, b) => a + b, 0);
  assert.ok(fromPeers >= 4 * blob.data.length, `pieces from peers: ${fromPeers}`);
  // a second pull of the same blob is served from the store
  const again = await peers[2]!.pull('app/big', blob.digest);
  assert.equal(again.digest, blob.digest);
  assert.ok(r.proxy.blobBytes <= 1.1 * blob.data.length);
});

test('a parent killed mid-transfer is survived: the others finish with correct data', async () => {
  const r = await rig();
  const blob = await r.pushBlob('app/kill', 16 * MiB);
  r.proxy.rate = 8 * MiB; // the seed takes about 2 s: time to kill it halfway
  const env = { SAMPAN_P2P_PEER_STALL_SECONDS: '2' };
  const seed = await r.startPeer({ id: 'seed', env });
  const others = await Promise.all([1, 2, 3].map((i) => r.startPeer({ id: `child${i}`, env })));
  const seedPull = seed.pull('app/kill', blob.digest).catch((err: unknown) => err);
  await until(async () => ((await seed.holds(blob.digest))?.pieces ?? 0) > 0, 10_000);
  const pulls = others.map((p) => p.pull('app/kill', blob.digest));
  await until(async () => ((await others[0]!.holds(blob.digest))?.pieces ?? 0) >= 3, 10_000);
  // the CLI shows a download in progress with where its bytes came from
  const st = await runCmd(SAMPAN, ['p2p', 'status', '--peer', `http://127.0.0.1:${others[0]!.peerPort}`, '--format', 'json']);
  assert.equal(st.code, 0, st.stderr);
  const mine = (JSON.parse(st.stdout) as Array<{ id: string; complete: boolean; active?: { role: string; fromPeers: number } }>).find((t) => t.id === blob.digest);
  assert.equal(mine?.active?.role, 'child');
  assert.ok((mine?.active?.fromPeers ?? 0) > 0, JSON.stringify(mine));
  await seed.kill();
  await seedPull;
  r.proxy.rate = 0;
  for (const g of await Promise.all(pulls)) assert.deepEqual(g, { digest: blob.digest, size: blob.data.length });
});

test('a peer serving corrupt pieces is blocked; the children still get the right data', async () => {
  const r = await rig();
  const blob = await r.pushBlob('app/corrupt', 8 * MiB);
  const seed = await r.startPeer({ id: 'honest' });
  assert.equal((await seed.pull('app/corrupt', blob.digest)).digest, blob.digest);
  // a liar: says it holds every piece, serves noise
  let lies = 0;
  const liar = http.createServer((req, res) => {
    const m = /\/pieces\/(\d+)$/.exec(req.url ?? '');
    if (m) {
      lies++;
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(Buffer.alloc(1024 * 1024, 7));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ pieces: [...Array(8).keys()], complete: true, meta: { size: blob.data.length, pieceSize: MiB, pieceDigests: [] } }));
  });
  await new Promise<void>((ok) => liar.listen(0, '127.0.0.1', ok));
  const liarAddr = `http://127.0.0.1:${(liar.address() as AddressInfo).port}`;
  try {
    const ann = await fetch(`${r.scheduler!.url}/api/v1/tasks/${blob.digest}/announce`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ peerId: 'liar', addr: liarAddr, url: `${r.proxy.url}/v2/app/corrupt/blobs/${blob.digest}`, uploadSlots: 100, pieces: [...Array(8).keys()], finished: true }),
    });
    assert.equal(ann.status, 200, await ann.clone().text());
    const children = await Promise.all([1, 2, 3].map((i) => r.startPeer({ id: `c${i}` })));
    for (const g of await Promise.all(children.map((c) => c.pull('app/corrupt', blob.digest)))) assert.equal(g.digest, blob.digest);
    const digestFailures = (await Promise.all(children.map((c) => c.metric('sampan_p2p_peer_piece_failures_total{reason="digest"}')))).reduce((a, b) => a + b, 0);
    assert.ok(lies > 0, 'the scheduler never offered the liar as a parent');
    // a child has at most 2 requests at a parent at once: after the first bad piece it asks the liar no more
    assert.ok(digestFailures > 0 && digestFailures <= 6, `corrupt pieces seen: ${digestFailures}`);
  } finally {
    liar.close();
  }
});

test('preheat puts the blobs on the zone\'s peers before any pull', async () => {
  const r = await rig();
  const img = await r.pushImage('shop/web', '2.0', 6 * MiB);
  const z1 = await Promise.all([r.startPeer({ id: 'z1a', zone: 'z1' }), r.startPeer({ id: 'z1b', zone: 'z1' })]);
  await r.startPeer({ id: 'z2a', zone: 'z2' });
  await until(async () => {
    const peers = (await (await fetch(`${r.scheduler!.url}/metrics`)).text()).match(/sampan_p2p_scheduler_peers\S* (\d+)/);
    return Number(peers?.[1] ?? 0) >= 3;
  }, 15_000);
  const pre = await runCmd(SAMPAN, ['preheat', `${r.registry.hostPort}/shop/web:2.0`, '--scheduler', r.scheduler!.url, '--zone', 'z1']);
  assert.equal(pre.code, 0, pre.stdout + pre.stderr);
  assert.match(pre.stdout, /: done/);
  const held = await Promise.all(z1.map((p) => p.holds(img.layer)));
  assert.ok(held.some((h) => h?.complete), `layer not on z1 seeds: ${JSON.stringify(held)}`);
  const before = r.proxy.blobBytes;
  const p = z1.find((_, i) => held[i]?.complete)!;
  assert.equal((await p.pull('shop/web', img.layer)).digest, img.layer);
  assert.equal(r.proxy.blobBytes, before, 'a preheated blob comes from the peer, not the registry');
});

test('with the scheduler down (or none), pulls still succeed from the upstream', async () => {
  const r = await rig({ scheduler: false });
  const blob = await r.pushBlob('app/alone', 3 * MiB);
  const dead = `http://127.0.0.1:${await freePort()}`;
  const a = await r.startPeer({ id: 'nosched', scheduler: dead });
  assert.deepEqual(await a.pull('app/alone', blob.digest), { digest: blob.digest, size: blob.data.length });
  const b = await r.startPeer({ id: 'noflag' });
  assert.equal((await b.pull('app/alone', blob.digest)).digest, blob.digest);
});

test('a download that breaks off ends the runtime\'s stream with an error instead of leaving it waiting', async () => {
  const r = await rig({ scheduler: false });
  const blob = await r.pushBlob('app/cut', 8 * MiB);
  const a = await r.startPeer({ id: 'cut' });
  r.proxy.rate = 2 * MiB;
  const res = await fetch(`${a.url}/v2/app/cut/blobs/${blob.digest}`);
  assert.equal(res.status, 200);
  const body = res.arrayBuffer();
  body.catch(() => undefined);
  await until(async () => r.proxy.blobBytes > MiB, 10_000);
  await r.proxy.stop(); // the registry's connection drops mid-blob
  const outcome = await Promise.race([body.then(() => 'ended cleanly', () => 'error'), new Promise((done) => setTimeout(() => done('still waiting'), 20_000))]);
  assert.equal(outcome, 'error');
});

test('the Sampan engine pulls an image through its local peer (--registry-mirror)', async () => {
  const r = await rig();
  const peer = await r.startPeer({ id: 'local' });
  const e = await TestEngine.start({ args: ['--registry-mirror', `${r.registry.hostPort}=${peer.url}`] });
  try {
    const ref = `${r.registry.hostPort}/base/busybox:1`;
    assert.equal((await e.docker(['tag', 'busybox', ref])).code, 0);
    assert.equal((await e.docker(['push', ref])).code, 0);
    assert.equal((await e.docker(['rmi', ref, 'busybox'])).code, 0);
    const pull = await e.docker(['pull', ref]);
    assert.equal(pull.code, 0, pull.stderr);
    assert.ok((await peer.metric('sampan_p2p_peer_client_bytes_total')) > 0, 'the blobs did not go through the peer');
    const run = await e.docker(['run', '--rm', ref, 'echo', 'via p2p']);
    assert.equal(run.stdout, 'via p2p\n');
  } finally {
    await e.cleanup();
  }
});

