/**
 * The dashboard's P2P traffic, from real parts: a registry, the P2P scheduler and three peers (test/p2p's rig);
 * a blob pulled through the peers lands from the registry once (the seed) and from peers for the others, and
 * the manager's sampler (--p2p-scheduler) reads that off the scheduler's /api/v1/traffic, per repository.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { P2pRig } from '../p2p/harness.js';
import { P2pTraffic, repositoryOf } from '../../src/cluster/p2p-traffic.js';
import { silentLogger } from '../../src/lib/log.js';
import { until } from '../harness.js';

describe('P2P traffic for the dashboard', { timeout: 180_000 }, () => {
  let rig: P2pRig;
  before(async () => {
    rig = await P2pRig.start();
    for (let i = 0; i < 3; i++) await rig.startPeer();
  });
  after(async () => rig?.stop());

  it('names a blob URL by its repository', () => {
    assert.equal(repositoryOf('http://127.0.0.1:5000/v2/app/web/blobs/sha256:abc'), '127.0.0.1:5000/app/web');
    assert.equal(repositoryOf('/v2/library/busybox/blobs/sha256:abc'), 'library/busybox');
  });

  it('plots bytes from the registry and from peers per repository, and the series grows as pulls go on', async () => {
    const SIZE = 6 << 20;
    const { digest } = await rig.pushBlob('dash/web', SIZE);
    const traffic = new P2pTraffic(rig.scheduler!.url, silentLogger);
    await rig.peers[0]!.pull('dash/web', digest);
    let t = 0;
    const point = async () => {
      await traffic.sample(++t);
      const img = traffic.view().images.find((i) => i.image.endsWith('/dash/web'));
      return img?.samples[img.samples.length - 1];
    };
    const first = await until(async () => {
      const p = await point();
      return p && p.fromRegistry >= SIZE ? p : undefined;
    }, 30_000, 200);
    assert.equal(first!.fromPeers, 0);
    await rig.peers[1]!.pull('dash/web', digest);
    await rig.peers[2]!.pull('dash/web', digest);
    const later = await until(async () => {
      const p = await point();
      return p && p.fromPeers >= 2 * SIZE ? p : undefined;
    }, 30_000, 200);
    assert.equal(later!.fromRegistry, SIZE, 'the registry served the blob once');
    const samples = traffic.view().images.find((i) => i.image.endsWith('/dash/web'))!.samples;
    assert.ok(samples.length >= 2, 'the series moved');
    assert.ok(samples.every((s, i) => i === 0 || (s.fromPeers >= samples[i - 1]!.fromPeers && s.t > samples[i - 1]!.t)));
  });
});
