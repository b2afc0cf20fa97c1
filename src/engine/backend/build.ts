/** `POST /build`: the classic builder protocol (a tar context in, Docker's JSON progress lines out). */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Writable, type Readable } from 'node:stream';
import type { Output } from '../../docker-api/index.js';
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
  private res?: Writable;
  constructor(private readonly out: Output) {}
  get started(): boolean {
    return this.res !== undefined;
  }
  get writable(): Writable {
    this.res ??= this.out.open('application/json');
    return this.res;
  }
  send(msg: object): void {
    this.writable.write(`${JSON.stringify(msg)}\n`);
  }
  end(): void {
    this.res?.end();
  }
}

/** Docker's boolean query parameters: "1", "true", "True" are true. */
function boolParam(q: URLSearchParams, name: string, dflt = false): boolean {
  const v = q.get(name);
  if (v === null || v === '') return dflt;
  return !(v === '0' || v.toLowerCase() === 'false');
}

function jsonParam<T>(q: URLSearchParams, name: string, dflt: T): T {
  const v = q.get(name);
  if (!v) return dflt;
  try {
    return JSON.parse(v) as T;
  } catch {
    throw invalid(`invalid ${name}: not JSON`);
  }
}

/** The classic builder over this host's images and containers: the step cache outlives the engine. */
export class EngineBuild {
  private readonly cache: StepCache;

  constructor(private readonly e: Engine) {
    this.cache = new StepCache(path.join(e.config.root, 'build-cache'));
  }

  async build(q: URLSearchParams, context: Readable, registryConfig: string | undefined, output: Output): Promise<void> {
    const { e, cache } = this;
    if (q.get('remote')) throw invalid('remote build contexts are not supported: send the context as a tar body');
    const platform = q.get('platform');
    if (platform && !/^linux\/amd64(\/v1)?$/.test(platform)) throw invalid(`platform ${platform} is not supported: this engine builds linux/amd64 images`);
    const tags = q.getAll('t').filter(Boolean);
    for (const t of tags) {
      const ref = parseReference(t);
      if (ref.digest) throw invalid(`invalid tag ${JSON.stringify(t)}: a tag cannot hold a digest`);
    }
    const quiet = boolParam(q, 'q');
    const auth = decodeRegistryConfig(registryConfig);
    const ac = new AbortController();
    let finished = false;
    output.signal.addEventListener('abort', () => {
      if (!finished) ac.abort();
    }, { once: true });
    const shm = q.get('shmsize');
    const req: BuildRequest = {
      context: undefined as unknown as BuildContext, // received below, once the query is checked
      dockerfileText: '',
      dockerfile: q.get('dockerfile') || 'Dockerfile',
      tags,
      buildArgs: jsonParam<Record<string, string | null>>(q, 'buildargs', {}),
      target: q.get('target') || undefined,
      labels: jsonParam<Record<string, string>>(q, 'labels', {}),
      noCache: boolParam(q, 'nocache'),
      cacheFrom: jsonParam<string[] | null>(q, 'cachefrom', []) ?? [],
      pull: boolParam(q, 'pull'),
      rm: boolParam(q, 'rm', true),
      forceRm: boolParam(q, 'forcerm'),
      networkMode: q.get('networkmode') || 'default',
      extraHosts: q.getAll('extrahosts').flatMap((h) => h.split(',')).filter(Boolean),
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
    const out = new LazyStream(output);
    try {
      req.context = await BuildContext.receive(context, work, [req.dockerfile, '.dockerignore']);
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
  }

  async prune(): Promise<{ CachesDeleted: string[]; SpaceReclaimed: number; EntriesPruned: number }> {
    const n = await this.cache.prune((id) => this.e.images.store.byId(id) !== undefined);
    return { CachesDeleted: [], SpaceReclaimed: 0, EntriesPruned: n };
  }
}

function familiar(t: string): string {
  return /:[^/]+$/.test(t) ? t : `${t}:latest`;
}

const devNull = () => new Writable({ write: (_c, _e, cb) => cb() });
