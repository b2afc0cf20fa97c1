/**
 * `node dist/bench/release/run.js [flags]`: one simulated release of the same service under four policies (fixed
 * lockstep batches, Docker's update, a sliding window without pre-pull, smart with pre-pull), a table with the
 * ratios to lockstep, and the targets. Seeded: a run is reproducible. `--help` for the flags.
 */
import { parseArgs } from 'node:util';
import type { Policy } from '../../src/cluster/release/index.js';
import { simulate, type Result, type World } from './sim.js';

const { values: o } = parseArgs({
  options: {
    instances: { type: 'string', default: '8000' },
    hosts: { type: 'string', default: '2000' },
    window: { type: 'string', default: '100' },
    'first-batch': { type: 'string' },
    'straggler-factor': { type: 'string', default: '3' },
    seed: { type: 'string', default: '19' },
    'start-median': { type: 'string', default: '20' },
    'start-sigma': { type: 'string', default: '0.5' },
    'slow-hosts': { type: 'string', default: '0.01' },
    'slow-factor': { type: 'string', default: '10' },
    'fail-once': { type: 'string', default: '0.005' },
    'image-mb': { type: 'string', default: '256' },
    'link-mbit': { type: 'string', default: '100' },
    format: { type: 'string', default: 'table' },
    help: { type: 'boolean', short: 'h' },
  },
});

if (o.help) {
  process.stdout.write(`usage: node dist/bench/release/run.js [--instances 8000] [--hosts 2000] [--window 100] [--first-batch W]
  [--straggler-factor 3] [--seed 19] [--start-median 20 (s)] [--start-sigma 0.5] [--slow-hosts 0.01] [--slow-factor 10]
  [--fail-once 0.005] [--image-mb 256] [--link-mbit 100] [--format table|json]
Lockstep batches and Docker's parallelism are the window W; every policy is stop-first and lets failures through
(the budget is not what is compared); the confirmation comes as soon as the first batch is ready.
`);
  process.exit(0);
}

const num = (k: keyof typeof o, min = 0) => {
  const v = Number(o[k]);
  if (!Number.isFinite(v) || v < min) {
    process.stderr.write(`bench/release: --${k}: a number of at least ${min}, not ${String(o[k])}\n`);
    process.exit(2);
  }
  return v;
};
if (o.format !== 'table' && o.format !== 'json') {
  process.stderr.write(`bench/release: --format: table or json, not ${o.format}\n`);
  process.exit(2);
}
const W = num('window', 1);
const world: World = {
  instances: num('instances', 1), hosts: num('hosts', 1), seed: num('seed'), startMedianS: num('start-median'), startSigma: num('start-sigma'),
  slowHosts: num('slow-hosts'), slowFactor: num('slow-factor'), failOnce: num('fail-once'),
  // F/u: the image's bytes over a host's link
  pullBoundS: (num('image-mb') * 1024 * 1024 * 8) / (num('link-mbit', 0.001) * 1e6),
};
const base = { maxFailures: world.instances, failureAction: 'pause' as const, order: 'stop-first' as const };
const smart = { kind: 'smart' as const, firstBatch: o['first-batch'] ? num('first-batch', 1) : W, window: W, stragglerFactor: num('straggler-factor', 1), ...base };
const policies: Array<[string, Policy]> = [
  ['lockstep batches', { kind: 'lockstep', batch: W, ...base }],
  ["Docker's update", { kind: 'docker', parallelism: W, ...base }],
  ['sliding window, no pre-pull', { ...smart, prePull: false }],
  ['smart + pre-pull', { ...smart, prePull: true }],
];

const t0 = Date.now();
const results: Result[] = policies.map(([name, p]) => simulate(name, p, world));
const lock = results[0]!;
const smartR = results[3]!;
const targets = [
  { target: 'smart total ≤ 1/5 of lockstep', value: `${(smartR.totalS / lock.totalS).toFixed(3)}`, pass: smartR.totalS <= lock.totalS / 5 },
  { target: 'smart: 0 pulls on the critical path', value: `${smartR.criticalPulls}`, pass: smartR.criticalPulls === 0 },
  { target: `never more than W = ${W} unavailable (every policy)`, value: results.map((r) => r.maxUnavailable).join(' / '), pass: results.every((r) => r.maxUnavailable <= W) },
];

if (o.format === 'json') {
  process.stdout.write(`${JSON.stringify({ world, window: W, results, targets, simulatedInMs: Date.now() - t0 }, null, 2)}\n`);
} else {
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '–');
  const rows = results.map((r) => `| ${r.policy} | ${f(r.totalS)} | ${(r.totalS / lock.totalS).toFixed(3)} | ${f(r.t50S)} | ${f(r.t99S)} | ${f(r.t100S)} | ${r.maxUnavailable} | ${r.criticalPulls} | ${r.pulls} | ${r.retries} | ${r.verdict} |`);
  process.stdout.write([
    `World: ${world.instances} instances on ${world.hosts} hosts (slot i on host i mod ${world.hosts}); start lognormal, median ${world.startMedianS} s, sigma ${world.startSigma}; ${world.slowHosts * 100} % of hosts ${world.slowFactor} × slower; ${world.failOnce * 100} % of instances fail once (retried on another host); pull F/u = ${world.pullBoundS.toFixed(1)} s (${o['image-mb']} MiB at ${o['link-mbit']} Mbit/s) × the P2P benchmark's slowest/bound for the pulls under way; W = ${W}, straggler factor ${smart.stragglerFactor}, first batch ${smart.firstBatch}; seed ${world.seed}.`,
    '',
    '| policy | total (s) | / lockstep | 50 % (s) | 99 % (s) | 100 % (s) | max unavailable | pulls on the critical path | pulls | retries | verdict |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ...rows,
    '',
    ...targets.map((t) => `- ${t.target}: **${t.pass ? 'PASS' : 'no'}** (${t.value})`),
    '',
    `(simulated in ${Date.now() - t0} ms)`,
    '',
  ].join('\n'));
}
