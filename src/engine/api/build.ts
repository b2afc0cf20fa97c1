/** `POST /build`: the classic builder protocol (a tar context in, Docker's JSON progress lines out). */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import type { Ctx, Router } from './http.js';
import type { Engine } from '../engine.js';
import { errorMessage, invalid } from '../../lib/errors.js';
import { parseReference } from '../../lib/reference.js';
import { decodeRegistryConfig } from '../../lib/distribution/auth.js';
import { removeTree } from '../../lib/fsutil.js';
import { pullImage, pullReference, resolvePull } from '../registry/pull.js';
import { ProgressWriter } from '../registry/progress.js';
import { Builder, BuildStepError, type BuildRequest } from '../build/builder.js';
import { BuildContext } from '../build/context.js';
import { StepCache } from '../build/cache.js';
import { deriveImage } from '../images/commit.js';
import { parseBytes } from '../../lib/units.js';

/** The JSON lines go out once the first one is written: an error before that is a plain HTTP error, as dockerd's. */
class LazyStream {
  private res?: ServerResponse;
  constructor(private readonly ctx: Ctx) {}
  get started(): boolean {
    return this.res !== undefined;
  }
  get writable(): ServerResponse {
    this.res ??= this.ctx.stream('application/json');
    return this.res;
  }
  send(msg: object): void {
    this.writable.write(`${JSON.stringify(msg)}\n`);
  }
  end(): void {
    this.res?.end();
  }
}

function jsonParam<T>(ctx: Ctx, name: string, dflt: T): T {
  const v = ctx.query.get(name);
  if (!v) return dflt;
  try {
    return JSON.parse(v) as T;
  } catch {
    throw invalid(`invalid ${name}: not JSON`);
  }
}

export function buildRoutes(r: Router, e: Engine): void {
  const cache = new StepCache(path.join(e.config.root, 'build-cache'));
  r.add('POST', '/build', async (ctx) => {
    if (ctx.query.get('remote')) throw invalid('remote build contexts are not supported: send the context as a tar body');
    const platform = ctx.query.get('platform');
    if (platform && !/^linux\/amd64(\/v1)?$/.test(platform)) throw invalid(`platform ${platform} is not supported: this engine builds linux/amd64 images`);
    const tags = ctx.query.getAll('t').filter(Boolean);
    for (const t of tags) {
      const ref = parseReference(t);
      if (ref.digest) throw invalid(`invalid tag ${JSON.stringify(t)}: a tag cannot hold a digest`);
    }
    const quiet = ctx.bool('q');
    const auth = decodeRegistryConfig(ctx.req.headers['x-registry-config']);
    const ac = new AbortController();
    let finished = false;
    void ctx.closed().then(() => {
      if (!finished) ac.abort();
    });
    const shm = ctx.query.get('shmsize');
    const req: BuildRequest = {
      context: undefined as unknown as BuildContext, // received below, once the query is checked
      dockerfileText: '',
      dockerfile: ctx.query.get('dockerfile') || 'Dockerfile',
      tags,
      buildArgs: jsonParam<Record<string, string | null>>(ctx, 'buildargs', {}),
      target: ctx.query.get('target') || undefined,
      labels: jsonParam<Record<string, string>>(ctx, 'labels', {}),
      noCache: ctx.bool('nocache'),
      cacheFrom: jsonParam<string[] | null>(ctx, 'cachefrom', []) ?? [],
      pull: ctx.bool('pull'),
      rm: ctx.bool('rm', true),
      forceRm: ctx.bool('forcerm'),
      networkMode: ctx.query.get('networkmode') || 'default',
      extraHosts: ctx.query.getAll('extrahosts').flatMap((h) => h.split(',')).filter(Boolean),
      shmSize: shm ? (/^\d+$/.test(shm) ? Number(shm) : parseBytes(shm)) : 0,
      signal: ac.signal,
    };
    if (path.posix.isAbsolute(req.dockerfile) || path.posix.normalize(req.dockerfile).startsWith('..')) {
      throw invalid(`the Dockerfile (${req.dockerfile}) must be within the build context`);
    }
    const work = await fs.mkdtemp(path.join(e.config.root, 'tmp', 'build-')).catch(async () => {
      await fs.mkdir(path.join(e.config.root, 'tmp'), { recursive: true });
      return fs.mkdtemp(path.join(e.config.root, 'tmp', 'build-'));
    });
    const out = new LazyStream(ctx);
    try {
      req.context = await BuildContext.receive(ctx.req, work, [req.dockerfile, '.dockerignore']);
      const text = req.context.file(req.dockerfile);
      if (text === undefined) throw invalid(`Cannot locate specified Dockerfile: ${req.dockerfile}`);
      req.dockerfileText = text;
      req.context.applyIgnore();
      const builder = new Builder(
        {
          store: e.images.store,
          containers: e.containers,
          cache,
          pull: async (ref, always) => {
            const have = e.images.store.find(ref);
            if (have && !always) return have;
            const target = await resolvePull(e.registries, pullReference(ref), auth(ref), { signal: ac.signal, log: e.log });
            const { image } = await pullImage(e.images.store, target, new ProgressWriter(quiet ? devNull() : out.writable), { signal: ac.signal });
            return image;
          },
          commit: (cid, config, createdBy) => e.commits.commit(cid, { config, createdBy, pause: false }),
          derive: (parent, config, createdBy, author) => deriveImage(e.images.store, parent, { config, history: { created_by: createdBy, author }, author }),
          removeImage: (id) => e.images.store.remove(id),
        },
        req,
        { stream: (text) => (quiet ? undefined : out.send({ stream: text })) },
      );
      const image = await builder.build();
      out.send({ aux: { ID: image.id } });
      if (quiet) out.send({ stream: `${image.id}\n` });
      else out.send({ stream: `Successfully built ${image.id.slice(7, 19)}\n` });
      for (const t of tags) {
        await e.images.store.tag(image.id, t);
        e.events.emit('image', 'tag', image.id, { name: t });
        if (!quiet) out.send({ stream: `Successfully tagged ${familiar(t)}\n` });
      }
      finished = true;
      out.end();
    } catch (err) {
      finished = true;
      if (!out.started) throw err;
      const message = errorMessage(err);
      const code = err instanceof BuildStepError ? err.exitCode : 1;
      out.send({ errorDetail: { code, message }, error: message });
      out.end();
    } finally {
      await removeTree(work).catch(() => undefined);
    }
  });

  r.add('POST', '/build/prune', async (ctx) => {
    const n = await cache.prune((id) => e.images.store.byId(id) !== undefined);
    ctx.send(200, { CachesDeleted: [], SpaceReclaimed: 0, EntriesPruned: n });
  });
}

function familiar(t: string): string {
  return /:[^/]+$/.test(t) ? t : `${t}:latest`;
}

const devNull = () => new Writable({ write: (_c, _e, cb) => cb() });
