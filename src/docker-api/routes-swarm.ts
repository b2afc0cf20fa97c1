/**
 * Swarm mode's routes (moby's api/server/router/swarm): services, tasks, nodes, configs and the swarm itself, over a
 * SwarmBackend. Registered only where the server is a swarm manager.
 */
import { decodeRegistryAuth } from '../lib/distribution/auth.js';
import { invalid, notFound, notImplemented } from '../lib/errors.js';
import type { SwarmBackend } from './backend.js';
import type { Ctx, Router } from './http.js';

/** `?version=N`: the Version.Index the client read; Docker refuses an update without it. */
function version(ctx: Ctx): number {
  const v = ctx.query.get('version');
  const n = Number(v);
  if (v === null || v === '' || !Number.isInteger(n) || n < 0) throw invalid(`invalid swarm object version: "${v ?? ''}"`);
  return n;
}

export function swarmRoutes(r: Router, s: SwarmBackend): void {
  const auth = (ctx: Ctx) => decodeRegistryAuth(ctx.req.headers['x-registry-auth']);
  r.add('GET', '/swarm', async (ctx) => ctx.send(200, await s.inspect()));

  r.add('GET', '/nodes', async (ctx) => ctx.send(200, await s.nodes.list(ctx.filters())));
  r.add('GET', '/nodes/{id}', async (ctx) => ctx.send(200, await s.nodes.inspect(ctx.param('id'))));
  r.add('POST', '/nodes/{id}/update', async (ctx) => {
    await s.nodes.update(ctx.param('id'), version(ctx), await ctx.json());
    ctx.send(200);
  });
  r.add('DELETE', '/nodes/{id}', async (ctx) => {
    await s.nodes.remove(ctx.param('id'), ctx.bool('force'));
    ctx.send(200);
  });

  r.add('GET', '/services', async (ctx) => ctx.send(200, await s.services.list(ctx.filters(), ctx.bool('status'))));
  r.add('POST', '/services/create', async (ctx) => ctx.send(201, await s.services.create(await ctx.json(), auth(ctx))));
  r.add('GET', '/services/{id}', async (ctx) => ctx.send(200, await s.services.inspect(ctx.param('id'))));
  r.add('POST', '/services/{id}/update', async (ctx) => {
    const rollback = ctx.query.get('rollback');
    if (rollback !== null && rollback !== '' && rollback !== 'previous') throw invalid(`unrecognized rollback option ${rollback}`);
    ctx.send(200, await s.services.update(ctx.param('id'), version(ctx), await ctx.json(), { rollback: rollback === 'previous', auth: auth(ctx) }));
  });
  r.add('DELETE', '/services/{id}', async (ctx) => {
    await s.services.remove(ctx.param('id'));
    ctx.send(200);
  });
  r.add('GET', '/services/{id}/logs', async (ctx) => {
    const tailQ = ctx.query.get('tail');
    const tail = !tailQ || tailQ === 'all' ? undefined : Number(tailQ);
    if (tail !== undefined && !Number.isFinite(tail)) throw invalid(`invalid tail value: ${tailQ}`);
    const o = { stdout: ctx.bool('stdout'), stderr: ctx.bool('stderr'), follow: ctx.bool('follow'), timestamps: ctx.bool('timestamps'), details: ctx.bool('details'), tail, since: ctx.query.get('since') ?? undefined, until: ctx.query.get('until') ?? undefined };
    if (!o.stdout && !o.stderr) throw invalid('Bad parameters: you must choose at least one stream');
    await s.services.logs(ctx.param('id'), o, ctx.output());
  });

  r.add('GET', '/tasks', async (ctx) => ctx.send(200, await s.tasks.list(ctx.filters())));
  r.add('GET', '/tasks/{id}', async (ctx) => ctx.send(200, await s.tasks.inspect(ctx.param('id'))));

  // no secrets (yet): none listed, any one not found (the CLI's `inspect NAME` asks every kind of object), none made
  r.add('GET', '/secrets', (ctx) => ctx.send(200, []));
  r.add('GET', '/secrets/{id}', (ctx) => {
    throw notFound(`secret ${ctx.param('id')} not found`);
  });
  const noSecrets = () => {
    throw notImplemented('secrets are not supported by this swarm manager: use configs');
  };
  for (const [m, p] of [['POST', '/secrets/create'], ['POST', '/secrets/{id}/update'], ['DELETE', '/secrets/{id}']] as const) r.add(m, p, noSecrets);

  r.add('GET', '/configs', async (ctx) => ctx.send(200, await s.configs.list(ctx.filters())));
  r.add('POST', '/configs/create', async (ctx) => ctx.send(201, await s.configs.create(await ctx.json())));
  r.add('GET', '/configs/{id}', async (ctx) => ctx.send(200, await s.configs.inspect(ctx.param('id'))));
  r.add('POST', '/configs/{id}/update', async (ctx) => {
    await s.configs.update(ctx.param('id'), version(ctx), await ctx.json());
    ctx.send(200);
  });
  r.add('DELETE', '/configs/{id}', async (ctx) => {
    await s.configs.remove(ctx.param('id'));
    ctx.send(204);
  });
}
