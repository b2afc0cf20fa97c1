/**
 * The Docker Engine API's routes: each parses and validates its request, calls one backend method and writes the
 * answer. Docker's rules live in the backends; nothing here knows whether one host or a cluster answers.
 */
import { decodeRegistryAuth } from '../lib/distribution/auth.js';
import type { ExecCreateRequest, ExecStartRequest } from '../lib/docker-types.js';
import { goFields } from '../lib/gojson.js';
import { invalid, unavailable } from '../lib/errors.js';
import type { Backends, Output } from './backend.js';
import type { Ctx, Router } from './http.js';
import { swarmRoutes } from './routes-swarm.js';

/**
 * Run a backend method that may stream: the answer is what it writes to the Output, or a plain 200 when it wrote
 * nothing (a detached exec).
 */
async function streamed(ctx: Ctx, fn: (out: Output) => Promise<void>): Promise<void> {
  let used = false;
  const out = ctx.output();
  await fn({
    signal: out.signal,
    open: (type, headers) => ((used = true), out.open(type, headers)),
    hijack: (type) => ((used = true), out.hijack(type)),
  });
  if (!used) ctx.send(200);
}

const EXEC_CREATE_FIELDS = ['AttachStdin', 'AttachStdout', 'AttachStderr', 'Tty', 'Cmd', 'Env', 'User', 'WorkingDir', 'Privileged', 'DetachKeys', 'ConsoleSize'] as const;

const statHeader = (s: object) => Buffer.from(JSON.stringify(s)).toString('base64');

function containerRoutes(r: Router, { containers: c, exec }: Backends): void {
  r.add('GET', '/containers/json', async (ctx) => ctx.send(200, await c.list({ all: ctx.bool('all'), limit: ctx.int('limit', -1)!, size: ctx.bool('size'), filters: ctx.filters() })));
  r.add('POST', '/containers/prune', async (ctx) => ctx.send(200, await c.prune(ctx.filters())));
  r.add('POST', '/containers/create', async (ctx) => ctx.send(201, await c.create(await ctx.json(), ctx.query.get('name') ?? undefined)));
  r.add('GET', '/containers/{id}/json', async (ctx) => ctx.send(200, await c.inspect(ctx.param('id'), { size: ctx.bool('size') })));
  const lifecycle = (action: (id: string, ctx: Ctx) => Promise<void>) => async (ctx: Ctx) => {
    await action(ctx.param('id'), ctx);
    ctx.send(204);
  };
  const stopOpts = (ctx: Ctx) => ({ timeout: ctx.int('t'), signal: ctx.query.get('signal') ?? undefined });
  r.add('POST', '/containers/{id}/start', lifecycle((id) => c.start(id)));
  r.add('POST', '/containers/{id}/stop', lifecycle((id, ctx) => c.stop(id, stopOpts(ctx))));
  r.add('POST', '/containers/{id}/restart', lifecycle((id, ctx) => c.restart(id, stopOpts(ctx))));
  r.add('POST', '/containers/{id}/kill', lifecycle((id, ctx) => c.kill(id, ctx.query.get('signal') ?? undefined)));
  r.add('POST', '/containers/{id}/pause', lifecycle((id) => c.pause(id)));
  r.add('POST', '/containers/{id}/unpause', lifecycle((id) => c.unpause(id)));
  r.add('POST', '/containers/{id}/rename', lifecycle((id, ctx) => c.rename(id, ctx.query.get('name') ?? '')));
  const remove = (ctx: Ctx) => ({ force: ctx.bool('force'), volumes: ctx.bool('v'), link: ctx.bool('link') });
  r.add('DELETE', '/containers/{id}', lifecycle((id, ctx) => c.remove(id, remove(ctx))));
  // a legacy link's name, PARENT/ALIAS (`docker rm --link`)
  r.add('DELETE', '/containers/{parent}/{alias}', async (ctx) => {
    await c.remove(`${ctx.param('parent')}/${ctx.param('alias')}`, remove(ctx));
    ctx.send(204);
  });
  r.add('POST', '/containers/{id}/wait', async (ctx) => {
    const cond = ctx.query.get('condition') || 'not-running';
    if (cond !== 'not-running' && cond !== 'next-exit' && cond !== 'removed') throw invalid(`invalid condition: "${cond}"`);
    const ac = new AbortController();
    void ctx.closed().then(() => ac.abort());
    const { result } = await c.wait(ctx.param('id'), cond, ac.signal);
    // headers go out at once so the client knows the wait is registered (the CLI starts the container after)
    const res = ctx.stream('application/json');
    res.end(JSON.stringify(await result.catch((err: Error) => ({ StatusCode: -1, Error: { Message: err.message } }))) + '\n');
  });
  r.add('GET', '/containers/{id}/top', async (ctx) => ctx.send(200, await c.top(ctx.param('id'), ctx.query.get('ps_args') ?? '')));
  r.add('POST', '/containers/{id}/resize', async (ctx) => {
    await c.resize(ctx.param('id'), ctx.int('h', 24)!, ctx.int('w', 80)!);
    ctx.send(200);
  });
  r.add('GET', '/containers/{id}/logs', async (ctx) => {
    const tailQ = ctx.query.get('tail');
    const tail = !tailQ || tailQ === 'all' ? undefined : Number(tailQ);
    if (tail !== undefined && !Number.isFinite(tail)) throw invalid(`invalid tail value: ${tailQ}`);
    const o = { stdout: ctx.bool('stdout'), stderr: ctx.bool('stderr'), follow: ctx.bool('follow'), timestamps: ctx.bool('timestamps'), tail, since: ctx.query.get('since') ?? undefined, until: ctx.query.get('until') ?? undefined };
    await streamed(ctx, (out) => c.logs(ctx.param('id'), o, out));
  });
  r.add('POST', '/containers/{id}/attach', async (ctx) => {
    const o = { stdin: ctx.bool('stdin'), stdout: ctx.bool('stdout'), stderr: ctx.bool('stderr'), stream: ctx.bool('stream'), logs: ctx.bool('logs'), detachKeys: ctx.query.get('detachKeys') ?? undefined };
    await streamed(ctx, (out) => c.attach(ctx.param('id'), o, out));
  });
  r.add('POST', '/containers/{id}/update', async (ctx) => ctx.send(200, await c.update(ctx.param('id'), ((await ctx.json<Record<string, unknown>>()) ?? {}) as Record<string, unknown>)));
  r.add('GET', '/containers/{id}/stats', (ctx) => streamed(ctx, (out) => c.stats(ctx.param('id'), { stream: ctx.bool('stream', true), oneShot: ctx.bool('one-shot') }, out)));
  r.add('GET', '/containers/{id}/changes', async (ctx) => ctx.send(200, await c.changes(ctx.param('id'))));
  r.add('GET', '/containers/{id}/export', (ctx) => streamed(ctx, (out) => c.export(ctx.param('id'), out)));
  r.add('HEAD', '/containers/{id}/archive', async (ctx) => ctx.send(200, undefined, { 'X-Docker-Container-Path-Stat': statHeader(await c.statPath(ctx.param('id'), ctx.query.get('path') ?? '')) }));
  r.add('GET', '/containers/{id}/archive', (ctx) => streamed(ctx, (out) => c.getArchive(ctx.param('id'), ctx.query.get('path') ?? '', out)));
  r.add('PUT', '/containers/{id}/archive', async (ctx) => {
    await c.putArchive(ctx.param('id'), ctx.query.get('path') ?? '', ctx.req, { noOverwriteDirNonDir: ctx.bool('noOverwriteDirNonDir'), copyUIDGID: ctx.bool('copyUIDGID') });
    ctx.send(200);
  });
  r.add('POST', '/commit', async (ctx) => {
    const repo = ctx.query.get('repo') ?? '';
    const tag = ctx.query.get('tag') ?? '';
    // the body is a container Config to take over the container's own (the CLI sends none)
    const body = await ctx.json<Record<string, unknown> | null>();
    if (body !== undefined && body !== null && (typeof body !== 'object' || Array.isArray(body))) throw invalid('commit: the request body must be a container Config object');
    const id = await c.commit({
      container: ctx.query.get('container') ?? '',
      // as Docker: a tag without a repository names nothing
      ref: repo ? (tag ? `${repo}:${tag}` : repo) : undefined,
      comment: ctx.query.get('comment') || undefined,
      author: ctx.query.get('author') || undefined,
      changes: ctx.query.getAll('changes'),
      pause: ctx.bool('pause', true),
      config: body ?? undefined,
    });
    ctx.send(201, { Id: id.Id });
  });

  // Docker decodes these bodies into structs: keys in any case, a later one winning
  r.add('POST', '/containers/{id}/exec', async (ctx) => ctx.send(201, await exec.create(ctx.param('id'), goFields<ExecCreateRequest>(await ctx.json(), EXEC_CREATE_FIELDS))));
  r.add('POST', '/exec/{id}/start', async (ctx) => {
    const body = goFields<ExecStartRequest>(await ctx.json(), ['Detach', 'Tty', 'ConsoleSize']);
    await streamed(ctx, (out) => exec.start(ctx.param('id'), body, out));
  });
  r.add('GET', '/exec/{id}/json', async (ctx) => ctx.send(200, await exec.inspect(ctx.param('id'))));
  r.add('POST', '/exec/{id}/resize', async (ctx) => {
    await exec.resize(ctx.param('id'), ctx.int('h', 24)!, ctx.int('w', 80)!);
    ctx.send(200);
  });
}

function imageRoutes(r: Router, { images: i, build }: Backends): void {
  const auth = (ctx: Ctx) => decodeRegistryAuth(ctx.req.headers['x-registry-auth']);
  r.add('GET', '/images/json', async (ctx) => ctx.send(200, await i.list({ all: ctx.bool('all'), filters: ctx.filters() })));
  r.add('POST', '/images/load', (ctx) => streamed(ctx, (out) => i.load(ctx.req, { quiet: ctx.bool('quiet') }, out)));
  r.add('GET', '/images/get', (ctx) => streamed(ctx, (out) => i.save(ctx.query.getAll('names'), out)));
  r.add('GET', '/images/{name*}/get', (ctx) => streamed(ctx, (out) => i.save([ctx.param('name')], out)));
  r.add('POST', '/images/create', async (ctx) => {
    const fromSrc = ctx.query.get('fromSrc');
    const repo = ctx.query.get('repo') ?? '';
    const tag = ctx.query.get('tag') ?? '';
    if (fromSrc === '-') {
      await streamed(ctx, (out) => i.import({ repo, tag, changes: ctx.query.getAll('changes'), message: ctx.query.get('message') ?? undefined }, ctx.req, out));
      return;
    }
    if (fromSrc) throw invalid('importing from a URL is not supported; send the archive in the request body (fromSrc=-)');
    const image = ctx.query.get('fromImage');
    if (!image) throw invalid('fromImage or fromSrc is required');
    const constraints = ctx.query.getAll('constraint');
    await streamed(ctx, (out) => i.pull({ image, tag, platform: ctx.query.get('platform') || undefined, auth: auth(ctx), ...(constraints.length && { constraints }) }, out));
  });
  r.add('GET', '/images/{name*}/json', async (ctx) => ctx.send(200, await i.inspect(ctx.param('name'))));
  r.add('GET', '/images/{name*}/history', async (ctx) => ctx.send(200, await i.history(ctx.param('name'))));
  r.add('POST', '/images/{name*}/tag', async (ctx) => {
    await i.tag(ctx.param('name'), ctx.query.get('repo') ?? '', ctx.query.get('tag') ?? undefined);
    ctx.send(201);
  });
  r.add('POST', '/images/{name*}/push', (ctx) => streamed(ctx, (out) => i.push(ctx.param('name'), ctx.query.get('tag') ?? undefined, auth(ctx), out)));
  r.add('DELETE', '/images/{name*}', async (ctx) => ctx.send(200, await i.remove(ctx.param('name'), { force: ctx.bool('force'), prune: !ctx.bool('noprune') })));
  r.add('POST', '/images/prune', async (ctx) => ctx.send(200, await i.prune(ctx.filters())));
  r.add('GET', '/distribution/{name*}/json', async (ctx) => ctx.send(200, await i.distribution(ctx.param('name'), auth(ctx))));
  r.add('POST', '/auth', async (ctx) => ctx.send(200, await i.login(await ctx.json())));

  r.add('POST', '/build', (ctx) => {
    const header = ctx.req.headers['x-registry-config'];
    return streamed(ctx, (out) => build.build(ctx.query, ctx.req, Array.isArray(header) ? header[0] : header, out));
  });
  r.add('POST', '/build/prune', async (ctx) => ctx.send(200, await build.prune()));
}

function systemRoutes(r: Router, { system, networks: n, volumes: v, swarm }: Backends): void {
  const ping = (ctx: Ctx) => ctx.send(200, 'OK', { 'Builder-Version': '1', 'Cache-Control': 'no-cache, no-store, must-revalidate', 'Pragma': 'no-cache', ...system.pingHeaders?.() });
  r.add('GET', '/_ping', ping);
  r.add('HEAD', '/_ping', ping);
  // not a swarm manager: Docker's answer, which clients know, rather than a bare 404
  const notSwarm = () => {
    throw unavailable('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.');
  };
  for (const base of swarm ? [] : ['/swarm', '/nodes', '/services', '/tasks', '/secrets', '/configs']) {
    for (const method of ['GET', 'POST', 'DELETE']) for (const p of [base, `${base}/{rest*}`]) r.add(method, p, notSwarm);
  }
  r.add('GET', '/version', async (ctx) => ctx.send(200, await system.version()));
  r.add('GET', '/info', async (ctx) => ctx.send(200, await system.info()));
  r.add('GET', '/system/df', async (ctx) => ctx.send(200, await system.df()));
  r.add('GET', '/events', (ctx) => streamed(ctx, (out) => system.events({ since: ctx.query.get('since') ?? undefined, until: ctx.query.get('until') ?? undefined, filters: ctx.filters() }, out)));

  r.add('GET', '/networks', async (ctx) => ctx.send(200, await n.list(ctx.filters())));
  r.add('GET', '/networks/{id}', async (ctx) => ctx.send(200, await n.inspect(ctx.param('id'))));
  r.add('POST', '/networks/create', async (ctx) => ctx.send(201, await n.create((await ctx.json()) ?? {})));
  r.add('DELETE', '/networks/{id}', async (ctx) => {
    await n.remove(ctx.param('id'));
    ctx.send(204);
  });
  r.add('POST', '/networks/prune', async (ctx) => ctx.send(200, await n.prune(ctx.filters())));
  r.add('POST', '/networks/{id}/connect', async (ctx) => {
    await n.connect(ctx.param('id'), (await ctx.json()) ?? {});
    ctx.send(200);
  });
  r.add('POST', '/networks/{id}/disconnect', async (ctx) => {
    await n.disconnect(ctx.param('id'), (await ctx.json()) ?? {});
    ctx.send(200);
  });

  r.add('GET', '/volumes', async (ctx) => ctx.send(200, await v.list(ctx.filters())));
  r.add('POST', '/volumes/create', async (ctx) => ctx.send(201, await v.create((await ctx.json()) ?? {})));
  r.add('POST', '/volumes/prune', async (ctx) => ctx.send(200, await v.prune(ctx.filters())));
  r.add('GET', '/volumes/{name}', async (ctx) => ctx.send(200, await v.inspect(ctx.param('name'))));
  r.add('DELETE', '/volumes/{name}', async (ctx) => {
    await v.remove(ctx.param('name'), ctx.bool('force'));
    ctx.send(204);
  });
}

/** Every route of the Docker Engine API that Sampan serves, over `backends`. */
export function dockerRoutes(r: Router, backends: Backends): void {
  systemRoutes(r, backends);
  if (backends.swarm) swarmRoutes(r, backends.swarm);
  containerRoutes(r, backends);
  imageRoutes(r, backends);
}
