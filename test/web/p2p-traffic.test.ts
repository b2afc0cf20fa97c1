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
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { EtcdCluster } from '../../src/cluster/index.js';
import { SAMPAN, freePort, runCmd, until } from '../harness.js';

describe('P2P traffic for the dashboard', { timeout: 180_000 }, () => {
  let rig: P2pRig;
  let dir: string;
  let etcd: EtcdCluster | undefined;
  let manager: ChildProcess | undefined;
  /** The blob the first test pulls, pulled again by a new peer in the last. */
  let blobDigest = '';
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sdp2p-'));
    rig = await P2pRig.start();
    for (let i = 0; i < 3; i++) await rig.startPeer();
  });
  after(async () => {
    if (manager && manager.exitCode === null) {
      const gone = new Promise((r) => manager!.once('exit', r));
      manager.kill('SIGTERM');
      await gone;
    }
    await etcd?.stop();
    await rig?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('names a blob URL by its repository', () => {
    assert.equal(repositoryOf('http://127.0.0.1:5000/v2/app/web/blobs/sha256:abc'), '127.0.0.1:5000/app/web');
    assert.equal(repositoryOf('/v2/library/busybox/blobs/sha256:abc'), 'library/busybox');
  });

  it('plots bytes from the registry and from peers per repository, and the series grows as pulls go on', async () => {
    const SIZE = 6 << 20;
    const { digest } = await rig.pushBlob('dash/web', SIZE);
    blobDigest = digest;
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

  it('plots it in the dashboard of a manager with --p2p-scheduler, and the plot moves with a new pull', async () => {
    etcd = await EtcdCluster.start({ dir: path.join(dir, 'etcd') });
    const port = await freePort();
    const fd = openSync(path.join(dir, 'manager.log'), 'a');
    manager = spawn(SAMPAN, ['cluster', 'manager', '--etcd', etcd.endpoints.join(','), '--listen', `unix://${path.join(dir, 'api.sock')}`, '--node-listen', `unix://${path.join(dir, 'node.sock')}`,
      '--name', 'p2pdash', '--ui-listen', `127.0.0.1:${port}`, '--p2p-scheduler', rig.scheduler!.url], { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const made = await runCmd(SAMPAN, ['cluster', 'token', '--ui', '--role', 'read', '--etcd', etcd.endpoints.join(','), '--name', 'p2pdash']);
    assert.equal(made.code, 0, made.stderr);
    const url = `http://127.0.0.1:${port}/ui/`;
    await until(async () => (await fetch(url).then((r) => r.status, () => 0)) === 200, 30_000, 200);
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
      await page.goto(`${url}#token=${made.stdout.trim()}`);
      await page.click('nav a[href="#/p2p"]');
      const figure = page.locator('figure.plot').filter({ hasText: 'dash/web' });
      await figure.waitFor({ timeout: 30_000 });
      assert.equal(await figure.locator('canvas').count(), 1, 'uPlot drew its canvas');
      const said = () => page.locator('section p.muted', { hasText: 'from peers' }).first().textContent();
      const before = await said();
      const fourth = await rig.startPeer();
      await fourth.pull('dash/web', blobDigest);
      await until(async () => (await said()) !== before, 30_000, 250);
      await page.screenshot({ path: path.join(dir, 'p2p.png') });
      if (process.env.SAMPAN_DASHBOARD_SHOTS) await fs.copyFile(path.join(dir, 'p2p.png'), path.join(process.env.SAMPAN_DASHBOARD_SHOTS, 'p2p-plot.png'));
    } finally {
      await browser.close();
    }
  });
});
