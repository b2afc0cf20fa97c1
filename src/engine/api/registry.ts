/** Registry routes: pull (from POST /images/create), push, and login (POST /auth). */
import type { Ctx, Router } from './http.js';
import type { Engine } from '../engine.js';
import { invalid } from '../../lib/errors.js';
import { familiarRepo } from '../../lib/reference.js';
import { decodeRegistryAuth, normalizeAuth } from '../../lib/distribution/auth.js';
import { distributionInfo, pullImage, pullReference, resolvePull } from '../registry/pull.js';
import { planPush, pushImages } from '../registry/push.js';
import { ProgressWriter } from '../registry/progress.js';

/** An AbortSignal that fires when the client goes away before `done()` is called. */
function cancelOnClose(ctx: Ctx): { signal: AbortSignal; done: () => void } {
  const ac = new AbortController();
  let finished = false;
  void ctx.closed().then(() => {
    if (!finished) ac.abort(new Error('the client went away'));
  });
  return { signal: ac.signal, done: () => (finished = true) };
}

/**
 * `POST /images/create?fromImage=NAME&tag=TAG`: resolve first (errors are plain HTTP answers, as Docker's),
 * then stream progress while the layers come in.
 */
export async function pullFromRegistry(ctx: Ctx, e: Engine, image: string, tag: string): Promise<void> {
  const platform = ctx.query.get('platform');
  if (platform && !/^linux\/amd64(\/v1)?$/.test(platform)) throw invalid(`no matching manifest for ${platform} in the manifest list entries: this engine runs linux/amd64 images only`);
  const auth = decodeRegistryAuth(ctx.req.headers['x-registry-auth']);
  const ref = pullReference(image, tag);
  const cancel = cancelOnClose(ctx);
  try {
    const target = await resolvePull(e.registries, ref, auth, { signal: cancel.signal, log: e.log });
    const res = ctx.stream('application/json');
    const progress = new ProgressWriter(res);
    const { image: img } = await pullImage(e.images.store, target, progress, { signal: cancel.signal });
    e.events.emit('image', 'pull', target.display, { name: familiarRepo(ref) });
    e.log.info({ ref: target.display, id: img.id, digest: target.topDigest }, 'image pulled');
    res.end();
  } finally {
    cancel.done();
  }
}

export function registryRoutes(r: Router, e: Engine): void {
  r.add('POST', '/images/{name*}/push', async (ctx) => {
    const auth = decodeRegistryAuth(ctx.req.headers['x-registry-auth']);
    const plan = planPush(e.images.store, ctx.param('name'), ctx.query.get('tag') ?? undefined);
    const cancel = cancelOnClose(ctx);
    try {
      const res = ctx.stream('application/json');
      const progress = new ProgressWriter(res);
      const pushed = await pushImages(e.registries, e.images.store, plan, auth, progress, cancel.signal);
      for (const p of pushed) e.events.emit('image', 'push', `${familiarRepo(plan.ref)}:${p.tag}`, { name: familiarRepo(plan.ref) });
      res.end();
    } finally {
      cancel.done();
    }
  });

  r.add('GET', '/distribution/{name*}/json', async (ctx) => {
    const auth = decodeRegistryAuth(ctx.req.headers['x-registry-auth']);
    ctx.send(200, await distributionInfo(e.registries, pullReference(ctx.param('name')), auth, { log: e.log }));
  });

  r.add('POST', '/auth', async (ctx) => {
    const body = await ctx.json<Record<string, unknown>>();
    if (!body || typeof body !== 'object') throw invalid('login: a JSON body with username, password and serveraddress is required');
    const auth = normalizeAuth(body);
    if (!auth) throw invalid('login: username and password (or an identity token) are required');
    auth.serveraddress = typeof body.serveraddress === 'string' ? body.serveraddress : auth.serveraddress;
    await e.registries.login(auth);
    ctx.send(200, { Status: 'Login Succeeded', IdentityToken: '' });
  });
}
