/**
 * `GET /sampan/v1/configs/NAME`: the config as Docker shows it; with `watch=1` its versions as server-sent events
 * (`event: config`, the config as data; `event: removed` when it goes), the current one first, until the client
 * leaves, so a process in a container can follow its configuration without a restart.
 */
import type { Ctx } from '../../docker-api/index.js';
import type { ServiceController } from './controller.js';
import { configView } from './views.js';

export async function configRoute(ctx: Ctx, services: ServiceController): Promise<void> {
  const name = ctx.param('name');
  if (!ctx.bool('watch')) {
    ctx.send(200, configView(services.configs.get(name)));
    return;
  }
  services.configs.get(name); // a 404 before the stream starts
  const res = ctx.stream('text/event-stream', { 'Cache-Control': 'no-cache' });
  const stop = services.configs.watch(name, (c) => {
    res.write(c ? `event: config\nid: ${c.version}\ndata: ${JSON.stringify(configView(c))}\n\n` : 'event: removed\ndata: {}\n\n');
  });
  await ctx.closed();
  stop();
}
