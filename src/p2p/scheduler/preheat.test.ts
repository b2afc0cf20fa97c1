import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isCode } from '../../lib/errors.js';
import type { PeerPreheatRequest } from '../protocol.js';
import { loadSchedulerConfig } from './config.js';
import { PreheatManager, imageBlobs, parseAuthorization, pickPlatform, registryBase, type Dispatcher, type ImageBlob } from './preheat.js';
import { SchedulerState } from './state.js';

const d = (c: string) => `sha256:${c.repeat(64)}`;

describe('preheat helpers', () => {
  it('Authorization values become registry credentials', () => {
    assert.deepEqual(parseAuthorization(`Basic ${Buffer.from('alice:pa:ss').toString('base64')}`), { username: 'alice', password: 'pa:ss' });
    assert.deepEqual(parseAuthorization('bearer tok.en'), { registrytoken: 'tok.en' });
    assert.equal(parseAuthorization(undefined), undefined);
    for (const bad of ['Digest x', 'Basic', `Basic ${Buffer.from('nocolon').toString('base64')}`, 'token']) assert.throws(() => parseAuthorization(bad), (e) => isCode(e, 'INVALID_ARGUMENT'), bad);
  });

  it('http for loopback and insecure registries, https otherwise; Docker Hub by its real host', () => {
    assert.equal(registryBase('127.0.0.1:5000', []).href, 'http://127.0.0.1:5000/');
    assert.equal(registryBase('localhost:5000', []).href, 'http://localhost:5000/');
    assert.equal(registryBase('reg.lan:5000', ['reg.lan:5000']).href, 'http://reg.lan:5000/');
    assert.equal(registryBase('10.1.2.3:5000', ['10.0.0.0/8']).href, 'http://10.1.2.3:5000/');
    assert.equal(registryBase('reg.example.com', []).href, 'https://reg.example.com/');
    assert.equal(registryBase('docker.io', []).href, 'https://registry-1.docker.io/');
  });

  it('an index gives its linux/amd64 image', () => {
    const idx = {
      manifests: [
        { digest: d('1'), platform: { os: 'linux', architecture: 'arm64' } },
        { digest: d('2'), platform: { os: 'linux', architecture: 'amd64', variant: 'v3' } },
        { digest: d('3'), platform: { os: 'linux', architecture: 'amd64' } },
      ],
    };
    assert.equal(pickPlatform(idx), d('3'));
    assert.equal(pickPlatform({ manifests: idx.manifests.slice(0, 2) }), d('2'));
    assert.throws(() => pickPlatform({ manifests: idx.manifests.slice(0, 1) }), /no linux\/amd64/);
  });

  it('a manifest gives its config and layers, once each, without foreign layers', () => {
    const m = {
      config: { digest: d('c'), size: 10 },
      layers: [
        { digest: d('a'), size: 100 },
        { digest: d('a'), size: 100 },
        { digest: d('f'), size: 5, urls: ['https://example.com/layer'] },
        { digest: d('b'), size: 200 },
      ],
    };
    assert.deepEqual(imageBlobs(m), [
      { digest: d('c'), size: 10 },
      { digest: d('a'), size: 100 },
      { digest: d('b'), size: 200 },
    ]);
    assert.throws(() => imageBlobs({ config: { digest: 'md5:x' } }), (e) => isCode(e, 'INVALID_ARGUMENT'));
  });
});

function setup(blobs: ImageBlob[], dispatch?: Dispatcher) {
  const state = new SchedulerState({ parents: 4, childrenPerSlot: 1, seedStallMs: 10_000, backToSourceLimit: 2, blockMs: 60_000, peerIdleMs: 600_000, taskIdleMs: 86_400_000 });
  const sent: Array<{ peer: string; req: PeerPreheatRequest }> = [];
  const pm = new PreheatManager({
    state,
    insecureRegistries: [],
    seedsPerBlob: 2,
    timeoutMs: 60_000,
    resolve: async () => ({ blobs, blobUrl: (x) => `http://reg/v2/app/blobs/${x}` }),
    dispatch:
      dispatch ??
      (async (h, req) => {
        sent.push({ peer: h.peerId, req });
      }),
    probe: async () => undefined,
  });
  state.setListener(pm);
  return { state, pm, sent };
}

const finish = (state: SchedulerState, task: string, peerId: string) => {
  state.announce(task, { peerId, addr: `http://${peerId}:1`, url: 'http://reg/x', uploadSlots: 4 });
  state.progress(task, peerId, { meta: { size: 1, pieceSize: 1 << 20, pieceDigests: ['0'.repeat(64)] }, finished: true });
};

describe('PreheatManager', () => {
  it('hands each blob to 2 peers of the zone, round-robin; done when a chosen peer finishes each', async () => {
    const blobs = [{ digest: d('1'), size: 1 }, { digest: d('2') }, { digest: d('3') }];
    const { state, pm, sent } = setup(blobs);
    for (const p of ['p1', 'p2', 'p3']) state.registerPeer({ peerId: p, addr: `http://${p}:1`, zone: 'z1', uploadSlots: 4 });
    state.registerPeer({ peerId: 'elsewhere', addr: 'http://e:1', zone: 'z2', uploadSlots: 4 });
    const { job, done } = pm.create({ image: '127.0.0.1:5000/app:1', zone: 'z1', authorization: 'Bearer t' });
    assert.equal(job.state, 'pending');
    await done;
    const j = pm.get(job.id);
    assert.equal(j.state, 'running');
    assert.deepEqual(
      j.blobs.map((b) => [b.digest, b.peers, b.state]),
      [
        [d('1'), ['p1', 'p2'], 'running'],
        [d('2'), ['p3', 'p1'], 'running'],
        [d('3'), ['p2', 'p3'], 'running'],
      ],
    );
    assert.equal(sent.length, 6);
    assert.deepEqual(sent[0]!.req, { taskId: d('1'), url: `http://reg/v2/app/blobs/${d('1')}`, authorization: 'Bearer t' });
    // a peer that was not chosen does not count
    finish(state, d('1'), 'elsewhere');
    assert.equal(pm.get(job.id).blobs[0]!.state, 'running');
    finish(state, d('1'), 'p2');
    finish(state, d('2'), 'p3');
    assert.equal(pm.get(job.id).state, 'running');
    finish(state, d('3'), 'p3');
    assert.equal(pm.get(job.id).state, 'done');
    assert.deepEqual(pm.counts(), { pending: 0, running: 0, done: 1, failed: 0 });
  });

  it('a peer that cannot be reached is replaced by the next one; a blob nobody takes fails the job', async () => {
    const { state, pm } = setup([{ digest: d('1') }], async (h) => {
      if (h.peerId !== 'p3') throw new Error('connect ECONNREFUSED');
    });
    for (const p of ['p1', 'p2', 'p3']) state.registerPeer({ peerId: p, addr: `http://${p}:1`, uploadSlots: 4 });
    const { job, done } = pm.create({ image: '127.0.0.1:5000/app:1' });
    await done;
    assert.deepEqual(pm.get(job.id).blobs[0]!.peers, ['p3']);
    assert.deepEqual(state.liveHosts().map((h) => h.peerId), ['p3'], 'unreachable peers are skipped until heard from');

    const nobody = setup([{ digest: d('1') }], async () => {
      throw new Error('connect ECONNREFUSED');
    });
    nobody.state.registerPeer({ peerId: 'p1', addr: 'http://p1:1', uploadSlots: 4 });
    const r = nobody.pm.create({ image: '127.0.0.1:5000/app:1' });
    await r.done;
    const j = nobody.pm.get(r.job.id);
    assert.equal(j.state, 'failed');
    assert.match(j.error!, /no peer took blob/);
  });

  it('no peers in the zone, a seed that drops out, a bad reference, a timeout', async () => {
    const { state, pm } = setup([{ digest: d('1') }]);
    const r = pm.create({ image: '127.0.0.1:5000/app:1', zone: 'nowhere' });
    await r.done;
    assert.equal(pm.get(r.job.id).state, 'failed');
    assert.match(pm.get(r.job.id).error!, /no peers registered in zone nowhere/);

    state.registerPeer({ peerId: 'p1', addr: 'http://p1:1', uploadSlots: 4 });
    const r2 = pm.create({ image: '127.0.0.1:5000/app:1' });
    await r2.done;
    state.announce(d('1'), { peerId: 'p1', addr: 'http://p1:1', url: 'http://reg/x', uploadSlots: 4 });
    state.progress(d('1'), 'p1', { failedTask: true });
    assert.equal(pm.get(r2.job.id).state, 'failed');
    // it got the blob from the upstream after all
    state.progress(d('1'), 'p1', { finished: true });
    assert.equal(pm.get(r2.job.id).state, 'done');

    assert.throws(() => pm.create({ image: 'Not A Reference' }), (e) => isCode(e, 'INVALID_ARGUMENT'));
    assert.throws(() => pm.create({ image: '127.0.0.1:5000/app:1', authorization: 'nope' }), (e) => isCode(e, 'INVALID_ARGUMENT'));
    assert.throws(() => pm.get('nope'), (e) => isCode(e, 'NOT_FOUND'));
  });

  it('a blob already finished on a peer of the zone is done without a dispatch', async () => {
    const { state, pm, sent } = setup([{ digest: d('1') }]);
    finish(state, d('1'), 'p1');
    const r = pm.create({ image: '127.0.0.1:5000/app:1' });
    await r.done;
    assert.equal(pm.get(r.job.id).state, 'done');
    assert.equal(sent.length, 0);
  });
});

describe('scheduler config', () => {
  it('flags > env > file > defaults; validated', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sched-cfg-'));
    try {
      const file = path.join(dir, 'c.json');
      await fs.writeFile(file, JSON.stringify({ parents: 6, seedStallSeconds: 3, backToSourceLimit: 5, blockSeconds: 7 }));
      const c = await loadSchedulerConfig({ config: file, parents: 8 }, { SAMPAN_P2P_SCHEDULER_SEED_STALL_SECONDS: '2.5', SAMPAN_P2P_SCHEDULER_INSECURE_REGISTRIES: 'a:5000, b' });
      assert.equal(c.parents, 8);
      assert.equal(c.seedStallSeconds, 2.5);
      assert.equal(c.backToSourceLimit, 5);
      assert.equal(c.blockSeconds, 7);
      assert.deepEqual(c.insecureRegistries, ['a:5000', 'b']);
      assert.equal(c.listen, '127.0.0.1:65003');
      assert.equal(c.logLevel, 'info');
      await assert.rejects(loadSchedulerConfig({ listen: 'nope' }, {}), /listen: expected HOST:PORT/);
      await assert.rejects(loadSchedulerConfig({}, { SAMPAN_P2P_SCHEDULER_PARENTS: 'x' }), /not a number/);
      await fs.writeFile(file, JSON.stringify({ bogus: 1 }));
      await assert.rejects(loadSchedulerConfig({ config: file }, {}), /scheduler config/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
