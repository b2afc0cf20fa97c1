/** Pull, push, distribution inspect and login: the registry client's part of the images backend (loaded with its first use). */
import type { Output, PullOptions, RegistryAuth } from '../../docker-api/index.js';
import { invalid } from '../../lib/errors.js';
import { familiarRepo } from '../../lib/reference.js';
import { normalizeAuth } from '../../lib/distribution/auth.js';
import type { Engine } from '../engine.js';
import { distributionInfo, pullImage, pullReference, resolvePull } from '../registry/pull.js';
import { planPush, pushImages } from '../registry/push.js';
import { ProgressWriter } from '../registry/progress.js';

/** Resolve first (errors are plain HTTP answers, as Docker's), then stream progress while the layers come in. */
export async function pull(e: Engine, o: PullOptions, out: Output): Promise<void> {
  if (o.platform && !/^linux\/amd64(\/v1)?$/.test(o.platform)) throw invalid(`no matching manifest for ${o.platform} in the manifest list entries: this engine runs linux/amd64 images only`);
  const ref = pullReference(o.image, o.tag);
  const target = await resolvePull(e.registries, ref, o.auth, { signal: out.signal, log: e.log });
  const res = out.open('application/json');
  const { image: img } = await pullImage(e.images.store, target, new ProgressWriter(res), { signal: out.signal });
  e.events.emit('image', 'pull', target.display, { name: familiarRepo(ref) });
  e.log.info({ ref: target.display, id: img.id, digest: target.topDigest }, 'image pulled');
  res.end();
}

export async function push(e: Engine, name: string, tag: string | undefined, auth: RegistryAuth | undefined, out: Output): Promise<void> {
  const plan = planPush(e.images.store, name, tag);
  const res = out.open('application/json');
  const pushed = await pushImages(e.registries, e.images.store, plan, auth, new ProgressWriter(res), out.signal);
  for (const p of pushed) e.events.emit('image', 'push', `${familiarRepo(plan.ref)}:${p.tag}`, { name: familiarRepo(plan.ref) });
  res.end();
}

export function distribution(e: Engine, name: string, auth: RegistryAuth | undefined): Promise<unknown> {
  return distributionInfo(e.registries, pullReference(name), auth, { log: e.log });
}

export async function login(e: Engine, raw: unknown): Promise<{ Status: string; IdentityToken: string }> {
  if (!raw || typeof raw !== 'object') throw invalid('login: a JSON body with username, password and serveraddress is required');
  const body = raw as Record<string, unknown>;
  const auth = normalizeAuth(body);
  if (!auth) throw invalid('login: username and password (or an identity token) are required');
  auth.serveraddress = typeof body.serveraddress === 'string' ? body.serveraddress : auth.serveraddress;
  await e.registries.login(auth);
  return { Status: 'Login Succeeded', IdentityToken: '' };
}
