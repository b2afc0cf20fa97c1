#!/usr/bin/env node
// Turns the raw data of bench/p2p/run.sh (OUT/params.json, OUT/runs.tsv, OUT/pulls.tsv) into a markdown table and
// the verdict (stdout), and optionally an SVG plot and the table spliced into a doc.
// Usage: node report.mjs OUT [OUT2 …] [--svg FILE] [--docs FILE [--block NAME]] [--ignore OUT:KIND:N …]
// --ignore leaves OUT's runs of KIND at N out (e.g. runs a fault of the emulation spoilt, recorded again later).
// --docs replaces what stands between <!-- NAME:begin --> and <!-- NAME:end --> in FILE (NAME: p2p-bench).
// Several OUTs (runs of the same setup: size, rate, queueing): a run in a later one replaces an earlier one's run
// of the same kind, N and number, e.g. N = 32 run again after a change, or the direct baseline recorded apart.
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const opt = (k) => {
  const i = args.indexOf(`--${k}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const outs = args.filter((a, i) => !a.startsWith('--') && !(i > 0 && args[i - 1].startsWith('--')));
const ignored = new Set(args.filter((a, i) => i > 0 && args[i - 1] === '--ignore'));
if (!outs.length) {
  process.stderr.write('usage: node report.mjs OUT [OUT2 …] [--svg FILE] [--docs FILE [--block NAME]] [--ignore OUT:KIND:N …]\n');
  process.exit(2);
}
const params = outs.map((o) => JSON.parse(readFileSync(path.join(o, 'params.json'), 'utf8')));
const P = params[0];
for (const [i, q] of params.entries()) {
  const differs = ['size', 'rateBytesPerSec', 'qdisc', 'cc', 'burst', 'verify'].filter((k) => q[k] !== P[k]);
  if (differs.length) {
    process.stderr.write(`${outs[i]}: not the same setup as ${outs[0]} (${differs.join(', ')})\n`);
    process.exit(2);
  }
}
const rows = (o, f) => (existsSync(path.join(o, f)) ? readFileSync(path.join(o, f), 'utf8').trim().split('\n').filter(Boolean).map((l) => l.split(/\s+/)) : []);
const num = (s) => (s === undefined || s === '-' || s === '' ? NaN : Number(s));
const F = P.size;
const FU = F / P.rateBytesPerSec; // the bound for every N (u_registry = u = d)
const bound = (n) => Math.max(F / P.rateBytesPerSec, F / P.rateBytesPerSec, (n * F) / (P.rateBytesPerSec * (n + 1)));
const median = (a) => {
  if (!a.length) return NaN;
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const max = (a) => (a.length ? Math.max(...a) : NaN);
const min = (a) => (a.length ? Math.min(...a) : NaN);
const f1 = (x) => (x === Infinity ? '∞' : Number.isFinite(x) ? x.toFixed(1) : '–');
const f2 = (x) => (x === Infinity ? '∞' : Number.isFinite(x) ? x.toFixed(2) : '–');
const fin = (a) => a.filter(Number.isFinite);

const byKey = new Map(); // kind n run -> the run, from the last OUT that has it
outs.forEach((o, oi) => {
  // runs.tsv: kind n run start t1 regSent regTx idle min5 bench peerIn upIn served busy fDigest fGone bts victim lies hung
  const runs = rows(o, 'runs.tsv').map((r) => ({
    kind: r[0], n: +r[1], run: +r[2], start: +r[3], end: +r[4], regSent: +r[5], regTx: +r[6], idle: num(r[7]), idleMin: num(r[8]), bench: num(r[9]),
    peerIn: num(r[10]), upIn: num(r[11]), served: num(r[12]), busy: num(r[13]), fDigest: num(r[14]), fGone: num(r[15]), bts: num(r[16]), victim: r[17], lies: num(r[18]), hung: num(r[19]) || 0,
  }));
  // pulls.tsv: kind n run host start rc t0 t1 code bytes sum; each OUT has a blob (and digest) of its own
  const digestHex = params[oi].digest.replace(/^sha256:/, '');
  const pulls = rows(o, 'pulls.tsv').map((r) => ({
    kind: r[0], n: +r[1], run: +r[2], host: +r[3], start: +r[4], rc: +r[5], t1: +r[7], code: +r[8], bytes: +r[9], sum: r[10],
  }));
  for (const p of pulls) {
    p.ok = p.rc === 0 && p.code === 200 && p.bytes === F && (!P.verify || p.sum === digestHex);
    p.secs = (p.t1 - p.start) / 1e6;
  }
  for (const r of runs) {
    if (ignored.has(`${o}:${r.kind}:${r.n}`)) continue;
    const mine = pulls.filter((p) => p.kind === r.kind && p.n === r.n && p.run === r.run);
    const victim = r.victim && r.victim !== '-' ? Number(r.victim.split(',')[0]) : undefined;
    r.victimHost = victim;
    r.pulls = mine.filter((p) => p.host !== victim);
    const ok = r.pulls.filter((p) => p.ok).map((p) => p.secs);
    r.okCount = ok.length;
    r.failed = r.pulls.length - ok.length;
    r.slowestOk = max(ok);
    // a run with a failed pull has no finite slowest pull: the targets are missed
    r.slowest = r.failed > 0 ? Infinity : r.slowestOk;
    r.median = median(ok);
    r.verified = P.verify ? ok.length : 0;
    byKey.set(`${r.kind} ${r.n} ${r.run}`, r);
  }
});
const runs = [...byKey.values()];
const sel = (kind, n) => runs.filter((r) => r.kind === kind && r.n === n);
// N = 1 is the calibration's lone direct pull
const ns = [...new Set(runs.filter((r) => r.kind === 'p2p' || (r.kind === 'direct' && r.n > 1)).map((r) => r.n))].sort((a, b) => a - b);

const lines = [];
const say = (s = '') => lines.push(s);
// the registries' queue (run.sh before it had one of its own: a host's 50 ms)
const regQs = [...new Set(params.map((q) => q.regQueueMs ?? 50))];
const regQueue = regQs.length > 1 ? `; at the registries ${regQs.join(' or ')} ms, by result dir` : regQs[0] !== 50 ? `, ${regQs[0]} ms at the registries` : '';
say(`Image: one blob of ${P.sizeMiB} MiB (F = ${F} bytes) of random bytes. Every host, the registry and the corrupt peer capped at ${P.rate} each way (${P.qdisc === 'fifo' ? `tc tbf, burst ${P.burst}, one 50 ms FIFO` : 'tc htb, small packets first, bulk in a 50 ms FIFO'}${regQueue}; TCP ${P.cc}); the scheduler's link is not capped. F/u = ${f1(FU)} s is the bound for every N here, since u_registry = u = d: max(F/u, F/d, N·F/((N+1)·u)) = F/u.`);
say(`Runs: ${max(ns.map((n) => sel('p2p', n).length)) || 0} P2P runs per N (fresh scheduler, fresh peers with empty stores each time), ${max(ns.map((n) => sel('direct', n).length)) || 0} direct run(s) per N${params.some((q) => q.directParallel) && runs.some((r) => r.kind === 'direct' && r.n > 1) ? ', every N at once, each N with a registry and hosts of its own (the same cap): a direct run is bound by its registry\'s link, not by the CPUs' : ''}. Times run from one common start instant to each curl's exit${P.verify ? '; every pull was piped into a SHA-256 digest and compared with the blob digest' : ''}.`);
const cal = sel('direct', 1)[0];
if (cal) say(`Calibration: one lone pull straight from the registry took ${f1(cal.slowest)} s (${f2(cal.slowest / FU)} × F/u; TCP/IP/Ethernet headers take about 4.4 % of a capped link, so about 1.05 is the best a transfer can do).`);
say();
say('| N | P2P median (s) | P2P slowest (s): median of runs [min–max of the pulls that finished] | bound F/u (s) | slowest / bound (worst run) | registry sent / F: payload (wire), worst run | direct slowest (s) | direct registry / F | speedup direct / P2P slowest (worst P2P run) | CPU idle %: mean (lowest 5 s), lowest run | benchmark CPU % of 2 CPUs | failed pulls | digests checked |');
say('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
const summary = {};
for (const n of ns) {
  const p = sel('p2p', n);
  const d = sel('direct', n);
  const slow = p.map((r) => r.slowest);
  const worst = max(slow);
  const regW = max(p.map((r) => r.regSent / F));
  const regTxW = max(p.map((r) => r.regTx / F));
  const dSlow = median(d.map((r) => r.slowest));
  const dReg = max(d.map((r) => r.regSent / F));
  const idleRun = p.reduce((a, r) => (a && a.idle <= r.idle ? a : r), undefined);
  const okSlow = p.map((r) => r.slowestOk);
  const s = (summary[n] = { worst, slowMed: median(slow), med: median(fin(p.map((r) => r.median))), bound: bound(n), reg: regW, regTx: regTxW, dSlow, speedup: dSlow / worst, speedupMed: dSlow / median(slow), idle: min(p.map((r) => r.idle)), idleMin: min(p.map((r) => r.idleMin)), bench: max(p.map((r) => r.bench)), lo: min(okSlow), hi: max(okSlow), okMed: median(okSlow) });
  const failed = p.reduce((a, r) => a + r.failed, 0) + d.reduce((a, r) => a + r.failed, 0);
  const hung = p.reduce((a, r) => a + r.hung, 0);
  const verified = p.reduce((a, r) => a + r.verified, 0) + d.reduce((a, r) => a + r.verified, 0);
  say(`| ${n} | ${f1(s.med)} | ${f1(s.slowMed)} [${f1(s.lo)}–${f1(s.hi)}] | ${f1(s.bound)} | ${f2(worst / s.bound)} | ${f2(regW)} (${f2(regTxW)}) | ${d.length ? f1(dSlow) : '–'} | ${d.length ? f2(dReg) : '–'} | ${d.length ? `${f1(s.speedupMed)} (${f1(s.speedup)})` : '–'} | ${idleRun ? `${f1(idleRun.idle)} (${f1(idleRun.idleMin)})` : '–'} | ${f1(s.bench)} | ${failed}${hung ? ` (${hung} hung)` : ''} | ${verified} |`);
}
say();
say('Per run (P2P): slowest s (of the pulls that finished) / median s / registry payload ÷ F / bytes peers got from peers ÷ (N−1)·F / busy answers / back-to-source / CPU idle % (lowest 5 s) / benchmark CPU %:');
say();
for (const n of ns) {
  const parts = sel('p2p', n).map((r) => `run ${r.run}: ${f1(r.slowestOk)}${r.failed ? ` (+${r.failed} failed${r.hung ? `, ${r.hung} hung` : ''})` : ''} / ${f1(r.median)} / ${f2(r.regSent / F)} / ${f2(r.peerIn / ((n - 1) * F))} / ${r.busy} / ${r.bts} / ${f1(r.idle)} (${f1(r.idleMin)}) / ${f1(r.bench)}`);
  say(`- N = ${n}: ${parts.join('; ')}`);
}
const faults = runs.filter((r) => !['p2p', 'direct'].includes(r.kind));
if (faults.length) {
  say();
  say('Faults (one run each):');
  say();
  say('| fault | N | pulls that finished (of the survivors) | median (s) | slowest (s) | slowest / bound | registry sent / F | what happened | digests checked |');
  say('|---|---:|---:|---:|---:|---:|---:|---|---:|');
  for (const r of faults) {
    let what = '';
    if (r.kind.startsWith('kill')) {
      const [host, pieces, children, at] = (r.victim ?? '-').split(',');
      what = r.victimHost ? `h${host} killed at ${at} s holding ${pieces} pieces, ${children} children; ${r.fGone} pieces lost to it (\`gone\`), ${r.bts} back-to-source` : 'no victim found';
    } else if (r.kind === 'corrupt') {
      what = `liar served ${r.lies} corrupt pieces; children's digest failures ${r.fDigest}; back-to-source ${r.bts}`;
    }
    if (r.hung) what += `; ${r.hung} pull(s) hung after their peer's download failed`;
    say(`| ${r.kind} | ${r.n} | ${r.okCount} of ${r.pulls.length} | ${f1(r.median)} | ${f1(r.slowestOk)}${r.failed ? ' (of those that finished)' : ''} | ${f2(r.slowestOk / bound(r.n))} | ${f2(r.regSent / F)} | ${what} | ${r.verified} |`);
  }
}
// verdict
say();
const v16 = summary[16];
const v32 = summary[32];
if (v16) {
  say(`- N = 16, slowest P2P pull within 1.5 × the bound: **${v16.worst <= 1.5 * v16.bound ? 'PASS' : 'MISS'}** (worst of ${sel('p2p', 16).length} runs ${f1(v16.worst)} s = ${f2(v16.worst / v16.bound)} × ${f1(v16.bound)} s; median of runs ${f2(v16.slowMed / v16.bound)} ×)`);
  say(`- N = 16, registry sends at most 1.1 × F: **${v16.reg <= 1.1 ? 'PASS' : 'MISS'}** (worst run ${f2(v16.reg)} × F in response bodies, ${f2(v16.regTx)} × F on the wire with headers)`);
}
if (v32 && Number.isFinite(v32.dSlow)) say(`- N = 32, at least 8 × faster than direct pulls: **${v32.speedup >= 8 ? 'PASS' : 'MISS'}** (direct slowest ${f1(v32.dSlow)} s vs P2P slowest ${f1(v32.worst)} s in the worst run: ${f1(v32.speedup)} ×; ${f1(v32.speedupMed)} × against the median run)`);
const idles = runs.filter((r) => r.kind === 'p2p').map((r) => r.idle);
if (idles.length) say(`- CPUs at least 30 % idle during the P2P runs: **${min(idles) >= 30 ? 'yes' : 'no'}** (lowest run mean ${f1(min(idles))} %, lowest 5 s window ${f1(min(runs.filter((r) => r.kind === 'p2p').map((r) => r.idleMin)))} %)`);
const text = lines.join('\n') + '\n';
process.stdout.write(text);

// ---------- SVG: completion time vs N, log-log ----------
const svgFile = opt('svg');
if (svgFile && ns.length) {
  const W = 640, H = 420, L = 70, R = 20, Tp = 40, B = 60;
  const xs = ns;
  const series = [
    { name: 'direct from the registry (slowest)', color: '#d62728', dash: '', pts: xs.map((n) => [n, summary[n].dSlow]) },
    { name: 'P2P (slowest pull, median of runs; bar: min–max)', color: '#1f77b4', dash: '', pts: xs.map((n) => [n, summary[n].okMed]), bars: xs.map((n) => [n, summary[n].lo, summary[n].hi]) },
    { name: 'P2P (median pull)', color: '#1f77b4', dash: '2,3', pts: xs.map((n) => [n, summary[n].med]) },
    { name: 'bound max(F/u, F/d, N·F/(u_reg+Σu))', color: '#2ca02c', dash: '6,4', pts: xs.map((n) => [n, summary[n].bound]) },
  ].map((s) => ({ ...s, pts: s.pts.filter(([, y]) => Number.isFinite(y)) }));
  const ys = series.flatMap((s) => s.pts.map(([, y]) => y)).concat(series.flatMap((s) => (s.bars ?? []).flatMap(([, a, b]) => [a, b]))).filter(Number.isFinite);
  const ylo = 10 ** Math.floor(Math.log10(min(ys) * 0.8));
  const yhi = 10 ** Math.ceil(Math.log10(max(ys) * 1.1));
  const xlo = Math.log2(min(xs)) - 0.3, xhi = Math.log2(max(xs)) + 0.3;
  const X = (n) => L + ((Math.log2(n) - xlo) / (xhi - xlo)) * (W - L - R);
  const Y = (y) => Tp + (1 - (Math.log10(y) - Math.log10(ylo)) / (Math.log10(yhi) - Math.log10(ylo))) * (H - Tp - B);
  const el = [];
  el.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="white"/>`);
  el.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">Completion of N simultaneous pulls of ${P.sizeMiB} MiB, every link ${P.rate}</text>`);
  // y grid: 1-2-5 per decade
  for (let d = ylo; d < yhi * 1.01; d *= 10) {
    for (const m of [1, 2, 5]) {
      const y = d * m;
      if (y < ylo || y > yhi) continue;
      el.push(`<line x1="${L}" x2="${W - R}" y1="${Y(y).toFixed(1)}" y2="${Y(y).toFixed(1)}" stroke="#ddd"/>`);
      el.push(`<text x="${L - 6}" y="${(Y(y) + 4).toFixed(1)}" text-anchor="end" font-size="12">${y}</text>`);
    }
  }
  for (const n of xs) {
    el.push(`<line x1="${X(n).toFixed(1)}" x2="${X(n).toFixed(1)}" y1="${Tp}" y2="${H - B}" stroke="#eee"/>`);
    el.push(`<text x="${X(n).toFixed(1)}" y="${H - B + 18}" text-anchor="middle" font-size="12">${n}</text>`);
  }
  el.push(`<rect x="${L}" y="${Tp}" width="${W - L - R}" height="${H - Tp - B}" fill="none" stroke="#333"/>`);
  el.push(`<text x="${(L + W - R) / 2}" y="${H - 22}" text-anchor="middle" font-size="13">N hosts pulling at once (log scale)</text>`);
  el.push(`<text transform="translate(18 ${(Tp + H - B) / 2}) rotate(-90)" text-anchor="middle" font-size="13">seconds (log scale)</text>`);
  for (const s of series) {
    if (!s.pts.length) continue;
    el.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" ${s.dash ? `stroke-dasharray="${s.dash}"` : ''} points="${s.pts.map(([n, y]) => `${X(n).toFixed(1)},${Y(y).toFixed(1)}`).join(' ')}"/>`);
    if (!s.dash) for (const [n, y] of s.pts) el.push(`<circle cx="${X(n).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="3.5" fill="${s.color}"/>`);
    for (const [n, a, b] of s.bars ?? []) {
      if (!Number.isFinite(a) || !Number.isFinite(b)) continue;
      const x = X(n).toFixed(1);
      el.push(`<line x1="${x}" x2="${x}" y1="${Y(a).toFixed(1)}" y2="${Y(b).toFixed(1)}" stroke="${s.color}" stroke-width="1.5"/>`);
      for (const v of [a, b]) el.push(`<line x1="${(X(n) - 5).toFixed(1)}" x2="${(X(n) + 5).toFixed(1)}" y1="${Y(v).toFixed(1)}" y2="${Y(v).toFixed(1)}" stroke="${s.color}" stroke-width="1.5"/>`);
    }
  }
  series.forEach((s, i) => {
    const y = Tp + 16 + i * 18;
    el.push(`<line x1="${L + 12}" x2="${L + 42}" y1="${y}" y2="${y}" stroke="${s.color}" stroke-width="2" ${s.dash ? `stroke-dasharray="${s.dash}"` : ''}/>`);
    el.push(`<text x="${L + 48}" y="${y + 4}" font-size="12">${s.name.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</text>`);
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">\n${el.join('\n')}\n</svg>\n`;
  mkdirSync(path.dirname(svgFile), { recursive: true });
  writeFileSync(svgFile, svg);
}

// ---------- splice the table into a doc ----------
const docs = opt('docs');
if (docs) {
  const doc = readFileSync(docs, 'utf8');
  const block = opt('block') ?? 'p2p-bench';
  const a = `<!-- ${block}:begin -->`, b = `<!-- ${block}:end -->`;
  const i = doc.indexOf(a), j = doc.indexOf(b);
  if (i < 0 || j < i) process.stderr.write(`${docs}: no ${a} … ${b} block: not changed\n`);
  else writeFileSync(docs, doc.slice(0, i + a.length) + '\n' + text + doc.slice(j));
}
