import type { Router } from './http.js';
import type { Engine } from '../engine.js';
import { sampleStats, type StatsSample } from '../containers/stats.js';
import type { ContainerRecord } from '../containers/model.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** docker update and docker stats. */
export function resourceRoutes(r: Router, e: Engine): void {
  const svc = e.containers;

  r.add('POST', '/containers/{id}/update', async (ctx) => {
    const body = ((await ctx.json<Record<string, unknown>>()) ?? {}) as Record<string, unknown>;
    ctx.send(200, await svc.update(ctx.param('id'), body));
  });

  r.add('GET', '/containers/{id}/stats', async (ctx) => {
    const rec = svc.get(ctx.param('id'));
    const stream = ctx.bool('stream', true);
    const oneShot = ctx.bool('one-shot', false);
    const sample = (prev?: StatsSample) => {
      const c: ContainerRecord = rec;
      const running = c.State.Status === 'running' || c.State.Status === 'paused';
      return sampleStats({ id: c.Id, name: c.Name, cgroupsPath: svc.cgroupsPath(c), pid: c.State.Pid, running }, prev);
    };
    if (!stream) {
      // a short earlier sample, so precpu_stats gives the CLI a sensible CPU %
      const prev = oneShot ? undefined : await sample();
      if (prev) await sleep(500);
      ctx.send(200, await sample(prev));
      return;
    }
    const res = ctx.stream('application/json');
    let gone = false;
    void ctx.closed().then(() => (gone = true));
    let prev: StatsSample | undefined;
    while (!gone && !res.destroyed) {
      const s = await sample(prev);
      res.write(JSON.stringify(s) + '\n');
      prev = s;
      for (let i = 0; i < 10 && !gone; i++) await sleep(100);
    }
    if (!res.writableEnded) res.end();
  });
}
