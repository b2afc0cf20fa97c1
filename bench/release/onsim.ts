/**
 * The client side of bench/release/onsim.sh: against a real manager (its Docker API socket) whose engines are
 * bench/cluster/sim.js's (its control socket), a service of N instances, then one release per mode, each to an
 * image no engine has yet; prints one JSON line per step.
 *   create  --api PATH --ctl PATH --service S --image I --instances N
 *           POST /services/create (replicated, N), until N tasks run on the engines
 *   release --api PATH --ctl PATH --service S --image I --instances N --mode docker|smart --window W [--first-batch B]
 *           docker: POST /services/ID/update (the new image, parallelism W, delay 0, stop-first, failure action
 *           continue): Docker's update, what `docker service update --image` sends
 *           smart:  POST /sampan/v1/releases (first batch B, window W, pre-pull, failures let through), confirmed
 *           as soon as it waits for it (what `sampan release start` + `sampan release confirm` send)
 *           then until the engines run N tasks of the new image: total, time to 50/99/100 %, the most unavailable at
 *           once, pulls (on the critical path: the task's own), as the simulator counted them
 */
import http from 'node:http';
import { parseArgs } from 'node:util';

const { positionals, values: o } = parseArgs({
  allowPositionals: true,
  options: {
    api: { type: 'string' }, ctl: { type: 'string' }, service: { type: 'string', default: 'app' }, image: { type: 'string' },
    instances: { type: 'string', default: '100' }, mode: { type: 'string', default: 'docker' }, window: { type: 'string', default: '100' },
    'first-batch': { type: 'string' }, 'straggler-factor': { type: 'string', default: '3' }, timeout: { type: 'string', default: '3600' },
    help: { type: 'boolean', short: 'h' },
  },
});
const USAGE = 'usage: node dist/bench/release/onsim.js create|release --api SOCK --ctl SOCK --image I [--service app] [--instances 100]\n'
  + '  [--mode docker|smart] [--window 100] [--first-batch W] [--straggler-factor 3] [--timeout 3600 (s)]\n'
  + 'Prints one JSON line. Run by bench/release/onsim.sh, which starts etcd, the manager and the simulator.\n';
if (o.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
if (!o.api || !o.ctl || !o.image) {
  process.stderr.write(`--api, --ctl and --image are required\n${USAGE}`);
  process.exit(2);
}
const N = Number(o.instances);
const W = Number(o.window);
const deadline = Date.now() + Number(o.timeout) * 1000;

function call<T = unknown>(socketPath: string, method: string, path: string, body?: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ socketPath, method, path, headers: payload ? { 'Content-Type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString('utf8')));
      res.on('end', () => {
        if ((res.statusCode ?? 0) >= 300) reject(new Error(`${method} ${path}: ${res.statusCode} ${text}`));
        else resolve((text ? JSON.parse(text) : undefined) as T);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A change the manager refused for now (503: etcd behind in a join storm, no leader yet) is asked again, for 2 min. */
async function change<T = unknown>(socketPath: string, method: string, path: string, body?: unknown): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await call<T>(socketPath, method, path, body);
    } catch (err) {
      if (i >= 60 || !/: 503 /.test(String(err))) throw err;
      process.stderr.write(`${String(err)}: again in 2 s\n`);
      await sleep(2000);
    }
  }
}

interface Track {
  instances: number; t0: number; runningAll: number; runningNew: number; maxUnavailable: number;
  at: Record<'50' | '99' | '100', number | undefined>; pulls: number; criticalPulls: number; startFailures: number;
}
interface ServiceInspect { ID: string; Version: { Index: number }; Spec: { TaskTemplate: { ContainerSpec: { Image: string } }; UpdateConfig?: object } & Record<string, unknown> }

/** Polls the simulator's tracked counts until N run the image (or the deadline). */
async function converge(onTick?: () => Promise<void>): Promise<Track> {
  for (;;) {
    const t = await call<Track>(o.ctl!, 'GET', '/track');
    if (t.at['100'] !== undefined || Date.now() > deadline) return t;
    await onTick?.();
    await sleep(250);
  }
}

const out = (x: object) => process.stdout.write(`${JSON.stringify(x)}\n`);

if (positionals[0] === 'create') {
  await call(o.ctl, 'POST', `/track?service=${o.service}&image=${encodeURIComponent(o.image)}&instances=${N}`);
  const t0 = Date.now();
  await change(o.api, 'POST', '/v1.41/services/create', {
    Name: o.service, TaskTemplate: { ContainerSpec: { Image: o.image, Args: ['sleep', 'infinity'] }, RestartPolicy: { Condition: 'any' } },
    Mode: { Replicated: { Replicas: N } },
  });
  const t = await converge();
  out({ step: 'create', instances: N, seconds: (Date.now() - t0) / 1000, running: t.runningNew, converged: t.at['100'] !== undefined });
} else if (positionals[0] === 'release') {
  const svc = await call<ServiceInspect>(o.api, 'GET', `/v1.41/services/${o.service}`);
  await call(o.ctl, 'POST', `/track?service=${o.service}&image=${encodeURIComponent(o.image)}&instances=${N}`);
  let confirmed = o.mode !== 'smart';
  if (o.mode === 'docker') {
    const spec = {
      ...svc.Spec, TaskTemplate: { ...svc.Spec.TaskTemplate, ContainerSpec: { ...svc.Spec.TaskTemplate.ContainerSpec, Image: o.image } },
      UpdateConfig: { Parallelism: W, Delay: 0, FailureAction: 'continue', MaxFailureRatio: 1, Order: 'stop-first', Monitor: 0 },
    };
    await change(o.api, 'POST', `/v1.41/services/${svc.ID}/update?version=${svc.Version.Index}`, spec);
  } else if (o.mode === 'smart') {
    await change(o.api, 'POST', '/sampan/v1/releases', {
      service: o.service, image: o.image, firstBatch: Number(o['first-batch'] ?? W), window: W, stragglerFactor: Number(o['straggler-factor']),
      maxFailures: N, prePull: true, order: 'stop-first', user: 'bench',
    });
  } else throw new Error(`--mode: docker or smart, not ${o.mode}`);
  let state = '';
  let stragglers = 0;
  let prePulled = 0;
  const t = await converge(async () => {
    if (o.mode !== 'smart') return;
    const r = await call<{ state: string; stragglers: number; prePulled: number }>(o.api!, 'GET', `/sampan/v1/releases/${o.service}`);
    ({ state, stragglers, prePulled } = r);
    if (!confirmed && r.state === 'waiting-confirm') {
      await change(o.api!, 'POST', `/sampan/v1/releases/${o.service}/confirm`, { user: 'bench' });
      confirmed = true;
    }
  });
  const s = (ms: number | undefined) => (ms === undefined ? null : ms / 1000);
  out({
    step: 'release', mode: o.mode, instances: N, window: W, converged: t.at['100'] !== undefined, totalS: s(t.at['100']), t50S: s(t.at['50']), t99S: s(t.at['99']), t100S: s(t.at['100']),
    maxUnavailable: t.maxUnavailable, pulls: t.pulls, criticalPulls: t.criticalPulls, startFailures: t.startFailures, running: t.runningNew,
    ...(o.mode === 'smart' && { state, stragglers, prePulled }),
  });
} else {
  process.stderr.write(USAGE);
  process.exit(2);
}
