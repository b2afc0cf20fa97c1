/**
 * The scheduler's HTTP API (JSON, on the HTTP kit): the routes of src/p2p/protocol.ts, a debug view of a task,
 * /healthz and /metrics. Bodies are checked with zod; errors are the kit's JSON flavour.
 */
import { z } from 'zod';
import { invalid } from '../../lib/errors.js';
import { HttpApp, type Req } from '../../lib/http/app.js';
import { jsonFlavour } from '../../lib/http/status.js';
import type { Logger } from '../../lib/log.js';
import type { TaskId } from '../protocol.js';
import type { SchedulerMetrics } from './metrics.js';
import type { PreheatManager } from './preheat.js';
import { AnnounceSchema, PreheatSchema, ProgressSchema, RegisterPeerSchema, peerId, taskId } from './schemas.js';
import type { SchedulerState } from './state.js';

export interface ServerDeps {
  state: SchedulerState;
  preheat: PreheatManager;
  metrics: SchedulerMetrics;
  log: Logger;
}

export function schedulerApp({ state, preheat, metrics, log }: ServerDeps): HttpApp {
  const app = new HttpApp({ log, flavour: jsonFlavour, metrics: { registry: metrics.registry, prefix: 'sampan_p2p_scheduler_', latency: true } });
  app.route('POST', '/api/v1/peers', 'peers', async (r) => {
    const h = state.registerPeer(parse(RegisterPeerSchema, await r.json()));
    return { status: 200, body: { peerId: h.peerId, addr: h.addr, ...(h.zone !== undefined ? { zone: h.zone } : {}), uploadSlots: h.uploadSlots } };
  });
  app.route('POST', '/api/v1/tasks/:task/announce', 'announce', async (r) => ({ status: 200, body: state.announce(task(r), parse(AnnounceSchema, await r.json())) }));
  app.route('POST', '/api/v1/tasks/:task/peers/:peer/progress', 'progress', async (r) => {
    const id = task(r);
    const pid = peer(r);
    return { status: 200, body: state.progress(id, pid, parse(ProgressSchema, await r.json())) };
  });
  app.route('DELETE', '/api/v1/tasks/:task/peers/:peer', 'leave', (r) => {
    state.leave(task(r), peer(r));
    return { status: 204 };
  });
  app.route('GET', '/api/v1/traffic', 'traffic', () => ({ status: 200, body: state.traffic() }));
  app.route('GET', '/api/v1/tasks/:task', 'task', (r) => ({ status: 200, body: state.view(task(r)) }));
  app.route('POST', '/api/v1/preheat', 'preheat', async (r) => {
    const { job } = preheat.create(parse(PreheatSchema, await r.json()));
    return { status: 202, body: job, headers: { Location: `/api/v1/preheat/${job.id}` } };
  });
  app.route('GET', '/api/v1/preheat/:id', 'preheat-job', (r) => ({ status: 200, body: preheat.get(r.param('id')) }));
  app.healthRoute(() => ({ status: 'ok', tasks: state.taskCount, peers: state.liveHosts().length }));
  app.metricsRoute(metrics.registry);
  return app;
}

const task = (r: Req): TaskId => parse(taskId, r.param('task'));
const peer = (r: Req): string => parse(peerId, r.param('peer'));

function parse<T extends z.ZodType>(schema: T, v: unknown): z.output<T> {
  const r = schema.safeParse(v);
  if (r.success) return r.data;
  const i = r.error.issues[0]!;
  throw invalid(i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message);
}
