/**
 * The dashboard against a big cluster, in headless chromium (playwright-core): opens URL#token=TOKEN and reports,
 * as JSON on stdout,
 *   firstRenderMs  navigation start → the overview showing the hosts' count (N), the page's own clock; phases:
 *                  the bundle loaded, the stream opened, its snapshot received (same clock)
 *   hostsRenderMs  a click on "Hosts" → the hosts table's first rows drawn
 *   rowsInDom      rows the (virtualised) table holds while N hosts are listed
 *   scroll         the table scrolled top to bottom in 200 steps, one per animation frame: frame time p50/p95/max
 *   searchMs       typing a host's name → the table showing that one host
 *   streams        requests to /sampan/v1/ui/stream the page made (one per page)
 * Usage: node dist/bench/web/measure.js URL TOKEN N
 */
import { chromium } from 'playwright-core';

const [url, token, nStr] = process.argv.slice(2);
if (!url || !token || !nStr) throw new Error('usage: measure.js URL TOKEN N');
const N = Number(nStr);

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
try {
  const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
  let streams = 0;
  page.on('request', (r) => {
    if (r.url().includes('/sampan/v1/ui/stream')) streams++;
  });
  await page.goto(`${url}#token=${token}`);
  try {
    await page.waitForFunction((n) => document.querySelector('[data-count="hosts"] .num')?.textContent === n.toLocaleString(), N, { timeout: 120_000, polling: 'raf' });
  } catch (err) {
    // what the page showed instead, for the run's log
    process.stderr.write(`the overview never showed ${N} hosts; the page says: ${(await page.textContent('body'))?.slice(0, 500)}\n`);
    throw err;
  }
  const firstRenderMs = await page.evaluate(() => Math.round(performance.now()));
  // where the time went: the bundle loaded, the stream's headers, its snapshot in hand
  const phases = await page.evaluate(() => {
    const at = (name: string) => Math.round(performance.getEntriesByName(name)[0]?.startTime ?? -1);
    const js = performance.getEntriesByType('resource').find((e) => e.name.endsWith('.js')) as PerformanceResourceTiming | undefined;
    return { bundleLoadedMs: Math.round(js?.responseEnd ?? -1), streamOpenMs: at('sampan:open /sampan/v1/ui/stream'), snapshotMs: at('sampan:snapshot') };
  });
  if (process.env.BENCH_SHOTS) await page.screenshot({ path: `${process.env.BENCH_SHOTS}/overview-${N}.png` });
  const t0 = Date.now();
  await page.click('nav a[href="#/hosts"]');
  await page.waitForSelector('[role="table"] .host-name', { timeout: 60_000 });
  const hostsRenderMs = Date.now() - t0;
  await page.waitForFunction((n) => document.querySelector('[aria-live="polite"]')?.textContent?.startsWith(n.toLocaleString()), N, { timeout: 60_000 });
  const rowsInDom = await page.locator('[role="table"] .vbody .vrow').count();
  // BENCH_SHOTS=DIR keeps a picture of the overview and of the hosts page at this size
  if (process.env.BENCH_SHOTS) await page.screenshot({ path: `${process.env.BENCH_SHOTS}/hosts-${N}.png` });
  const scroll = await page.evaluate(async () => {
    const box = document.querySelector('.vbody') as HTMLElement;
    const steps = 200;
    const frames: number[] = [];
    let last = performance.now();
    for (let i = 1; i <= steps; i++) {
      box.scrollTop = (box.scrollHeight - box.clientHeight) * (i / steps);
      box.dispatchEvent(new Event('scroll'));
      await new Promise((r) => requestAnimationFrame(() => r(undefined)));
      const now = performance.now();
      frames.push(now - last);
      last = now;
    }
    frames.sort((a, b) => a - b);
    const q = (p: number) => Math.round(frames[Math.min(frames.length - 1, Math.floor(p * frames.length))]! * 10) / 10;
    return { frames: steps, p50Ms: q(0.5), p95Ms: q(0.95), maxMs: q(1) };
  });
  const lastHost = await page.locator('[role="table"] .vbody .vrow .host-name').last().textContent();
  const s0 = Date.now();
  await page.getByLabel('Search hosts').fill(`sim${N - 1}`);
  await page.waitForFunction(() => document.querySelectorAll('[role="table"] .vbody .vrow').length === 1, undefined, { timeout: 60_000 });
  const searchMs = Date.now() - s0;
  process.stdout.write(`${JSON.stringify({ hosts: N, firstRenderMs, phases, hostsRenderMs, rowsInDom, scroll, lastHostAfterScroll: lastHost, searchMs, streams })}\n`);
} finally {
  await browser.close();
}
