/**
 * The dashboard in a real browser: Debian's chromium, headless, driven by playwright-core, against a 3-host
 * testbed with its registry and P2P network (real etcd, engines, manager, registry, scheduler and peers). The token
 * comes in the URL's fragment as `sampan cluster token --ui` prints it; the API behind the browsers' listener
 * refuses what has no token (401) and a read-only token's writes (403). A real smart release of a 6-replica service
 * is confirmed, paused, resumed and rolled back from the page, whose one live stream carries it, while the P2P page
 * plots the image's bytes moving. Screenshots of each page go to the test's temp dir (SAMPAN_DASHBOARD_SHOTS keeps
 * them elsewhere).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { TestCluster } from '../cluster/harness.js';
import { SAMPAN, runCmd, until } from '../harness.js';
import { makeBusyboxLayout, must } from '../registry/harness.js';

const CHROMIUM = '/usr/bin/chromium';

describe('the web dashboard', { timeout: 600_000 }, () => {
  let c: TestCluster;
  let browser: Browser;
  let ui: { url: string; token: string; readToken: string };
  let base: string;
  let shots: string;
  /** The testbed registry's app:v1 and app:v2 (v2: a layer of its own, so its pulls move the P2P plot). */
  let v1 = '';
  let v2 = '';

  before(async () => {
    assert.ok(existsSync(CHROMIUM), 'chromium is installed (scripts/setup.sh)');
    c = await TestCluster.start(3, 'sdash', { registry: true });
    ui = c.tb.ui!;
    base = ui.url.replace(/\/ui\/$/, '');
    shots = process.env.SAMPAN_DASHBOARD_SHOTS ?? path.join(path.dirname(c.dir), 'shots');
    await fs.mkdir(shots, { recursive: true });
    const run = await c.docker(['run', '-d', '--name', 'dash-web', '-l', 'tier=front', 'busybox', 'sh', '-c', 'echo hello-from-dash; sleep 600']);
    assert.equal(run.code, 0, run.stderr);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
    // two versions of an image in the testbed registry, pushed with skopeo
    const work = path.dirname(c.dir);
    const bb = await makeBusyboxLayout(work);
    const bundle = path.join(work, 'v2');
    await must('umoci', ['unpack', '--rootless', '--image', `${bb}:1`, bundle]);
    await fs.writeFile(path.join(bundle, 'rootfs', 'payload'), randomBytes(4 << 20));
    await must('umoci', ['repack', '--image', `${bb}:2`, bundle]);
    const reg = c.tb.registry!.addr;
    [v1, v2] = [`${reg}/app:v1`, `${reg}/app:v2`];
    for (const [tag, ref] of [['1', v1], ['2', v2]] as const) await must('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${bb}:${tag}`, `docker://${ref}`]);
  });

  after(async () => {
    await browser?.close();
    await c?.docker(['service', 'rm', 'web']);
    await c?.docker(['rm', '-f', 'dash-web', 'dash-live']);
    await c?.stop();
  });

  const get = (p: string, token?: string, method = 'GET') => fetch(`${base}${p}`, { method, headers: token ? { Authorization: `Bearer ${token}` } : {} });

  /** Per page: the live streams it opened, and any per-release watch (there must be none: one stream per page). */
  const streams = new WeakMap<Page, { ui: number; watch: number }>();

  async function open(token = ui.token, page = 'overview'): Promise<Page> {
    const p = await browser.newPage({ viewport: { width: 1366, height: 768 } });
    const n = { ui: 0, watch: 0 };
    streams.set(p, n);
    p.on('request', (r) => {
      const u = new URL(r.url()).pathname;
      if (u === '/sampan/v1/ui/stream') n.ui++;
      if (u.endsWith('/watch')) n.watch++;
    });
    await p.goto(`${ui.url}#token=${token}`);
    if (page !== 'overview') await p.click(`nav a[href="#/${page}"]`);
    return p;
  }

  /** Waits for `selector`; when it does not come, the error says what the page shows instead (a login box, an error). */
  async function shown(p: Page, selector: string): Promise<void> {
    try {
      await p.waitForSelector(selector);
    } catch (err) {
      throw new Error(`${selector} not shown: the page says ${JSON.stringify(await p.innerText('body').catch(() => '?'))} (${(err as Error).message.split('\n')[0]})`);
    }
  }

  it('serves the pages publicly and the API only with a token', async () => {
    const html = await get('/ui/');
    assert.equal(html.status, 200);
    assert.match(html.headers.get('content-type') ?? '', /^text\/html/);
    assert.ok(html.headers.get('etag'));
    const again = await fetch(`${base}/ui/`, { headers: { 'If-None-Match': html.headers.get('etag')! } });
    assert.equal(again.status, 304);
    for (const p of ['/sampan/v1/nodes', '/_ping', '/containers/json', '/metrics', '/sampan/v1/ui/stream']) {
      const r = await get(p);
      assert.equal(r.status, 401, p);
      assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
      assert.ok(((await r.json()) as { message: string }).message);
    }
    assert.equal((await get('/sampan/v1/nodes', 'SMPUI-000000000000.' + '0'.repeat(48))).status, 401);
    const nodes = (await (await get('/sampan/v1/nodes', ui.token)).json()) as Array<{ name: string }>;
    assert.deepEqual(nodes.map((n) => n.name).sort(), ['host1', 'host2', 'host3']);
    assert.equal((await get('/sampan/v1/nodes', ui.readToken)).status, 200);
    // a read-only token reads, checks itself, and writes nothing
    assert.deepEqual(await (await get('/sampan/v1/ui/login', ui.readToken, 'POST')).json(), { role: 'read' });
    assert.equal((await get('/containers/dash-web/stop', ui.readToken, 'POST')).status, 403);
    assert.equal((await get('/sampan/v1/releases/web/confirm', ui.readToken, 'POST')).status, 403);
    assert.notEqual((await get('/sampan/v1/releases/web/confirm', ui.token, 'POST')).status, 403);
    // an upgrade takes input even on a GET (attach's WebSocket): refused to a read-only token, and to none
    const upgrade = (token?: string) => new Promise<number>((resolve, reject) => {
      const u = new URL(`${base}/containers/dash-web/attach/ws?stream=1&stdin=1`);
      http.get({ host: u.hostname, port: u.port, path: u.pathname + u.search, headers: {
        Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', ...(token && { Authorization: `Bearer ${token}` }),
      } }).on('response', (res) => {
        res.resume();
        resolve(res.statusCode!);
      }).on('upgrade', (_res, socket) => {
        socket.destroy();
        resolve(101);
      }).on('error', reject);
    });
    assert.equal(await upgrade(), 401);
    assert.equal(await upgrade(ui.readToken), 403);
  });

  it('logs in from the link, forgets the token in the address bar and shows the overview', async () => {
    const p = await open();
    await shown(p, '.glance .host-name');
    assert.ok(!p.url().includes('token'), `the token left the address bar: ${p.url()}`);
    assert.equal(await p.evaluate(() => sessionStorage.getItem('sampan.token')), ui.token);
    const count = (k: string) => p.textContent(`[data-count="${k}"] .num`);
    assert.equal(await count('hosts'), '3');
    assert.equal(await count('up'), '3');
    await until(async () => Number(await count('containers')) >= 1, 20_000);
    assert.deepEqual((await p.locator('.glance .host-name').allTextContents()).sort(), ['host1', 'host2', 'host3']);
    await p.screenshot({ path: path.join(shots, 'overview.png') });
    // the live stream brings a new container without a reload
    const before = Number(await count('containers'));
    assert.equal((await c.docker(['run', '-d', '--name', 'dash-live', 'busybox', 'sleep', '600'])).code, 0);
    await until(async () => Number(await count('containers')) === before + 1, 20_000);
    await p.close();
  });

  it('lists and searches the hosts', async () => {
    const p = await open(ui.token, 'hosts');
    await shown(p, '[role="table"] .host-name');
    assert.deepEqual((await p.locator('[role="table"] .host-name').allTextContents()).sort(), ['host1', 'host2', 'host3']);
    await p.screenshot({ path: path.join(shots, 'hosts.png') });
    await p.getByLabel('Search hosts').fill('host2');
    await until(async () => (await p.locator('[role="table"] .host-name').count()) === 1, 10_000);
    assert.equal(await p.textContent('[role="table"] .host-name'), 'host2');
    await p.close();
  });

  it('finds a container by name and label, and tails its log', async () => {
    const p = await open(ui.token, 'containers');
    await p.getByLabel('Name, id or image').fill('dash-web');
    await shown(p, 'tr[data-container="dash-web"]');
    // the list before the search holds dash-web too: the search's answer is the one row
    await until(async () => (await p.locator('tbody tr').count()) === 1, 10_000)
      .catch(async () => assert.fail(`the search for dash-web shows ${JSON.stringify(await p.locator('tbody tr').allInnerTexts())}`));
    await p.getByLabel('Name, id or image').fill('');
    await p.getByLabel('Label').fill('tier=front');
    await until(async () => (await p.locator('tbody tr').count()) === 1 && (await p.locator('tr[data-container="dash-web"]').count()) === 1, 10_000);
    await p.getByRole('button', { name: 'logs of dash-web' }).click();
    await p.waitForSelector('.logs pre:has-text("hello-from-dash")');
    await p.screenshot({ path: path.join(shots, 'containers.png') });
    await p.close();
  });

  it('asks for a token without one, refuses a wrong one, and shows a read-only user no buttons', async () => {
    const p = await browser.newPage({ viewport: { width: 1366, height: 768 } });
    await p.goto(ui.url);
    await p.getByLabel('Token').fill('SMPUI-000000000000.' + '0'.repeat(48));
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.waitForSelector('[role="alert"]');
    await p.screenshot({ path: path.join(shots, 'login.png') });
    await p.getByLabel('Token').fill(ui.readToken);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.waitForSelector('nav .who:has-text("read-only")');
    await p.click('nav a[href="#/releases"]');
    await p.waitForSelector('#h-releases');
    assert.equal(await p.getByRole('button', { name: 'Confirm' }).count(), 0);
    await p.close();
  });

  it('keeps its token while the manager cannot check it (503), and signs in once it can', async () => {
    const p = await browser.newPage({ viewport: { width: 1366, height: 768 } });
    let refused = 0;
    await p.route('**/sampan/v1/ui/login', async (r) => {
      if (refused++ < 2) return r.fulfill({ status: 503, contentType: 'application/json', headers: { 'Retry-After': '2' }, body: '{"message":"cannot check the token now"}' });
      return r.continue();
    });
    await p.goto(`${ui.url}#token=${ui.token}`);
    await p.waitForSelector('[role="status"]:has-text("trying again")');
    await shown(p, '.glance .host-name');
    assert.ok(refused >= 3, `the page asked again: ${refused} checks`);
    assert.equal(await p.evaluate(() => sessionStorage.getItem('sampan.token')), ui.token);
    await p.close();
  });

  const slots = (p: Page, state?: string) => p.locator(`.instances [data-slot]${state ? `[data-state="${state}"]` : ''}`).count();
  /** The bytes the P2P page says hosts got for the app image, from peers and from the registry. */
  const p2pBytes = async (p: Page) => {
    const row = p.locator('tr[data-image$="/app"]');
    if (!(await row.count())) return 0;
    return Number(await row.getAttribute('data-from-peers')) + Number(await row.getAttribute('data-from-registry'));
  };

  it('runs a real smart release: waiting for confirmation, confirmed in the page, finished; the P2P plot moves with its pulls', async () => {
    const made = await c.docker(['service', 'create', '--detach', '--name', 'web', '--replicas', '6', v1, 'sleep', '3600']);
    assert.equal(made.code, 0, made.stderr);
    await until(async () => (await c.docker(['service', 'ls', '--filter', 'name=web', '--format', '{{.Replicas}}'])).stdout.trim() === '6/6', 180_000, 500);

    // the P2P page, open through the release: v1's pulls are on it, v2's come live
    const p2p = await open(ui.token, 'p2p');
    await until(async () => (await p2pBytes(p2p)) > 0, 60_000, 500);
    const before = await p2pBytes(p2p);

    const admin = await open(ui.token, 'releases');
    const started = await c.sampan(['release', 'start', 'web', v2, '--first-batch', '2', '--window', '2']);
    assert.equal(started.code, 0, started.stderr);
    await admin.getByRole('button', { name: 'open the release of web' }).click();
    await admin.waitForSelector('[data-release-state="waiting-confirm"]', { timeout: 180_000 });
    await until(async () => (await slots(admin, 'ready')) === 2, 30_000, 250);
    assert.equal(await slots(admin), 6);
    assert.equal(await admin.locator('.batches [data-batch]').count(), 1);
    await admin.screenshot({ path: path.join(shots, 'release-waiting.png') });

    // a read-only user sees it waiting, without a Confirm button; a forced confirm is refused
    const reader = await open(ui.readToken, 'releases');
    await reader.getByRole('button', { name: 'open the release of web' }).click();
    await reader.waitForSelector('[data-release-state="waiting-confirm"]');
    assert.equal(await reader.getByRole('button', { name: 'Confirm' }).count(), 0);
    assert.match(await reader.textContent('.panel') ?? '', /Waiting for an admin to confirm/);
    assert.equal((await get('/sampan/v1/releases/web/confirm', ui.readToken, 'POST')).status, 403);
    await reader.close();

    await admin.getByRole('button', { name: 'Confirm' }).click();
    await admin.waitForSelector('[data-release-state="done"]', { timeout: 300_000 });
    assert.equal(await slots(admin, 'ready'), 6);
    assert.equal(await admin.locator('.batches [data-batch]').count(), 2);
    // the confirmation is recorded as the browser token's, by its id (as `sampan cluster token --ui --ls` lists it)
    const id = /^SMPUI-([0-9a-f]{12})\./.exec(ui.token)![1]!;
    assert.match(await admin.textContent('.panel') ?? '', new RegExp(`6/6 updated.*confirmed by ui:${id}`, 's'));
    await admin.screenshot({ path: path.join(shots, 'release-done.png') });
    // v2's pulls on the hosts reached the P2P page live
    await until(async () => (await p2pBytes(p2p)) > before, 60_000, 500);
    assert.equal(await p2p.locator('figure.plot canvas').count() >= 1, true, 'uPlot drew the plot');
    await p2p.screenshot({ path: path.join(shots, 'p2p.png') });
    await p2p.close();
    assert.deepEqual(streams.get(admin), { ui: 1, watch: 0 }, 'one live stream for the page, no watch of its own');
    await admin.close();
  });

  it('pauses, resumes and rolls back a release from the page; the history shows both', async () => {
    const p = await open(ui.token, 'releases');
    const started = await c.sampan(['release', 'start', 'web', v1, '--first-batch', '2']);
    assert.equal(started.code, 0, started.stderr);
    await p.getByRole('button', { name: 'open the release of web' }).click();
    await p.waitForSelector('[data-release-state="waiting-confirm"]', { timeout: 180_000 });
    await p.getByRole('button', { name: 'Pause' }).click();
    await p.waitForSelector('[data-release-state="paused"]');
    await p.getByRole('button', { name: 'Resume' }).click();
    await p.waitForSelector('[data-release-state="waiting-confirm"]', { timeout: 60_000 });
    await p.getByRole('button', { name: 'Roll back' }).click();
    await p.waitForSelector('[data-release-state="rolled-back"]', { timeout: 180_000 });
    assert.equal(await p.getByRole('button', { name: 'Confirm' }).count(), 0);
    // the history: this release, rolled back, over the confirmed one
    await until(async () => (await p.locator('table[aria-label="release history"] tbody tr[data-release]').count()) === 2, 30_000, 250);
    const states = await p.locator('table[aria-label="release history"] tbody tr[data-release] .pill').allTextContents();
    assert.deepEqual(states, ['rolled-back', 'done']);
    const events = await p.locator('.events li').allTextContents();
    const id = /^SMPUI-([0-9a-f]{12})\./.exec(ui.token)![1]!;
    for (const e of ['pause', 'resume', 'rollback']) assert.ok(events.some((x) => x.includes(`${e}:`) && x.includes(`(ui:${id})`)), `${e} by ui:${id} in the events: ${events.join(' | ')}`);
    await p.screenshot({ path: path.join(shots, 'releases.png') });
    const image = await c.docker(['service', 'inspect', '-f', '{{.Spec.TaskTemplate.ContainerSpec.Image}}', 'web']);
    assert.equal(image.stdout.trim().replace(/@.*/, ''), v2, 'rolled back to v2');
    await p.close();
  });

  it('shows the testbed registry and its manifest cache on the images page', async () => {
    const p = await open(ui.token, 'images');
    const row = p.locator(`tr[data-registry="${c.tb.registry!.addr}"]`);
    await row.waitFor();
    await until(async () => /\d+ entries/.test((await row.locator('.manifest-cache').textContent()) ?? ''), 30_000, 500);
    assert.match(await row.textContent() ?? '', /up/);
    await p.screenshot({ path: path.join(shots, 'images.png') });
    await p.close();
  });

  it('issues and revokes browser tokens with sampan cluster token --ui', async () => {
    const etcd = c.tb.etcd.endpoints.join(',');
    const made = await runCmd(SAMPAN, ['cluster', 'token', '--ui', '--role', 'read', '--etcd', etcd, '--name', 'testbed', '--ui-url', ui.url, '--format', 'json']);
    assert.equal(made.code, 0, made.stderr);
    const t = JSON.parse(made.stdout) as { id: string; role: string; token: string; link: string };
    assert.equal(t.role, 'read');
    assert.equal(t.link, `${ui.url}#token=${t.token}`);
    assert.equal((await get('/sampan/v1/nodes', t.token)).status, 200);
    const ls = await runCmd(SAMPAN, ['cluster', 'token', '--ui', '--ls', '--etcd', etcd, '--name', 'testbed', '--format', 'json']);
    assert.ok((JSON.parse(ls.stdout) as Array<{ id: string }>).some((x) => x.id === t.id));
    assert.ok(!ls.stdout.includes(t.token));
    const rv = await runCmd(SAMPAN, ['cluster', 'token', '--ui', '--revoke', t.id, '--etcd', etcd, '--name', 'testbed']);
    assert.equal(rv.code, 0, rv.stderr);
    // the manager remembers a good token for a few seconds: the revocation lands within them
    await until(async () => (await get('/sampan/v1/nodes', t.token)).status === 401, 30_000, 500);
    const again = await runCmd(SAMPAN, ['cluster', 'token', '--ui', '--revoke', t.id, '--etcd', etcd, '--name', 'testbed']);
    assert.notEqual(again.code, 0);
  });
});
