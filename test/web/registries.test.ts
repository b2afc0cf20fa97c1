/**
 * The images page's registries: a real `sampan registry` with an image in it, its manifest fetched so that its
 * cache counts; the manager's reader (--registry-url) takes the figures off the registry's /metrics.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { P2pRig } from '../p2p/harness.js';
import { ImageRegistries, metric } from '../../src/cluster/image-registries.js';
import { TestRegistry } from '../registry/harness.js';

describe('registries for the dashboard', { timeout: 120_000 }, () => {
  let rig: P2pRig;
  before(async () => {
    rig = await P2pRig.start({ scheduler: false });
  });
  after(async () => rig?.stop());

  it('reads a Prometheus sample, summed over labels', () => {
    const text = '# HELP x\nsampan_x_total{cache="manifest"} 3\nsampan_x_total{cache="tag"} 4\nsampan_x_totals 100\n';
    assert.equal(metric(text, 'sampan_x_total'), 7);
    assert.equal(metric(text, 'sampan_x_total', 'cache="manifest"'), 3);
    assert.equal(metric(text, 'sampan_y'), undefined);
  });

  it('shows a registry\'s manifest cache, and an unreachable one as such', async () => {
    await rig.pushImage('dash/app', 'v1', 1024);
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${rig.registry.base}/v2/dash/app/manifests/v1`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(r.status, 200);
    }
    const dead = 'http://127.0.0.1:9/';
    const [s, d] = await new ImageRegistries([rig.registry.base, dead]).stats();
    assert.equal(s!.up, true, s!.error);
    assert.ok(s!.manifestCache, 'the manifest cache is reported');
    assert.ok(s!.manifestCache.entries >= 1);
    assert.ok(s!.manifestCache.hits >= 1, JSON.stringify(s));
    assert.equal(d!.up, false);
    assert.ok(d!.error);
  });

  it('shows a mirror\'s hit rate: its blob GETs from its store (hits) and from its upstream (misses)', async () => {
    const { layer } = await rig.pushImage('dash/mirrored', 'v1', 4096);
    const mirror = await TestRegistry.start({ args: ['--proxy-remote', rig.registry.base] });
    try {
      for (let i = 0; i < 3; i++) {
        const r = await fetch(`${mirror.base}/v2/dash/mirrored/blobs/${layer}`);
        assert.equal(r.status, 200);
        await r.arrayBuffer();
      }
      const [m] = await new ImageRegistries([mirror.base]).stats();
      assert.equal(m!.up, true, m!.error);
      assert.deepEqual({ hits: m!.hits, misses: m!.misses }, { hits: 2, misses: 1 });
      // the upstream is no mirror: no hit rate to show
      const [u] = await new ImageRegistries([rig.registry.base]).stats();
      assert.equal(u!.hits, undefined);
    } finally {
      await mirror.cleanup();
    }
  });
});
