/**
 * The classic builder: runs a Dockerfile's stages step by step. Each step makes an image (RUN and COPY/ADD
 * through a real container whose writable layer is committed, the rest as config only), found again in the
 * step cache when its parent and instruction are the same.
 * One file over ~500 lines: the steps share the stages' state and the cache lookups; what stands apart is in
 * steps.ts, sources.ts, expand.ts and cache.ts.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { invalid, SampanError } from '../../lib/errors.js';
import type { ImageConfig, ImageRuntimeConfig } from '../../lib/oci.js';
import type { Digest } from '../../lib/digest.js';
import type { Image, ImageStore } from '../images/store.js';
import type { ContainerService } from '../containers/service.js';
import { AttachConnection } from '../containers/attach.js';
import { parseSignal } from '../containers/spec.js';
import { parseDockerfile, parseInstruction, keyValues, type Heredoc, type Instruction, type Stage } from './dockerfile.js';
import { expandWord, expandWords } from './expand.js';
import { copySource, findSources, hashSources } from './sources.js';
import { extractArchive, isArchive } from './archive.js';
import { download, exposePorts, healthcheck, parseChmod, resolveChown, writeHeredoc } from './steps.js';
import type { StepCache } from './cache.js';
import type { BuildContext } from './context.js';

export interface BuildRequest {
  context: BuildContext;
  /** Its name in the context (for messages) and its text, read before .dockerignore was applied. */
  dockerfile: string;
  dockerfileText: string;
  tags: string[];
  buildArgs: Record<string, string | null>;
  target?: string;
  labels: Record<string, string>;
  noCache: boolean;
  /** Images a cached step may come from (with their parents); empty: any image the cache knows. */
  cacheFrom: string[];
  pull: boolean;
  /** Remove intermediate containers (rm, the default); forceRm also when a step failed (done anyway). */
  rm: boolean;
  forceRm: boolean;
  networkMode: string;
  extraHosts: string[];
  shmSize: number;
  signal: AbortSignal;
}

export interface BuildOutput {
  stream(text: string): void;
}

/** What the builder needs from the rest of the engine. */
export interface BuildDeps {
  store: ImageStore;
  containers: ContainerService;
  cache: StepCache;
  /** Pull an image (or make sure it is there when `always` is false). */
  pull(ref: string, always: boolean): Promise<Image>;
  /** A new image from a container's writable layer with the given config. */
  commit(containerId: string, config: ImageRuntimeConfig, createdBy: string): Promise<Image>;
  /** A new image with the parent's layers and a new config (no layer). */
  derive(parent: Image | undefined, config: ImageRuntimeConfig, createdBy: string, author?: string): Promise<Image>;
  removeImage(id: Digest): Promise<void>;
}

const DEFAULT_SHELL = ['/bin/sh', '-c'];
/** Build args every build accepts without an ARG, and keeps out of the image's history. */
const PROXY_ARGS = new Set(['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy']);
const short = (id: string) => id.replace(/^sha256:/, '').slice(0, 12);
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v ?? {})) as T;

/** A COPY/ADD, its words expanded. */
interface CopyPlan {
  dest: string;
  destIsDir: boolean;
  from?: string;
  chmod?: number;
  chown?: string;
  heredocs: Heredoc[];
  files: string[];
  urls: string[];
}

interface StageState {
  stage: Stage;
  image?: Image;
  config: ImageRuntimeConfig;
  args: Map<string, string | undefined>;
  shell: string[];
  /** CMD came from the base image (ENTRYPOINT then resets it, as Docker does). */
  cmdInherited: boolean;
}

export class Builder {
  private step = 0;
  private total = 0;
  private readonly created: Digest[] = [];
  private readonly usedArgs = new Set<string>();
  private readonly stages = new Map<number, Image | undefined>();
  /** Names of the stages built so far, for FROM and COPY --from. */
  private readonly names = new Map<string, number>();
  private escape = '\\';
  /** cachefrom's images and their parents, found at the first cache lookup. */
  private cacheSources?: Map<Digest, Image>;
  /** cachefrom's images themselves, matched by their history where they have no parents here. */
  private historySources: Image[] = [];

  constructor(
    private readonly d: BuildDeps,
    private readonly req: BuildRequest,
    private readonly out: BuildOutput,
  ) {}

  async build(): Promise<Image> {
    try {
      return await this.run();
    } catch (err) {
      // a failed build leaves nothing of its own behind: the images its steps made go again
      for (const id of this.created.reverse()) await this.d.removeImage(id).catch(() => undefined);
      throw err;
    }
  }

  private async run(): Promise<Image> {
    const df = parseDockerfile(this.req.dockerfileText);
    this.escape = df.escape;
    const meta = new Map<string, string | undefined>();
    for (const ins of df.metaArgs) {
      for (const { key, value } of keyValues(ins)) {
        const given = this.buildArg(key);
        meta.set(key, given ?? (value === undefined ? undefined : this.expand(value, (n) => meta.get(n))));
      }
    }
    const targetIdx = this.req.target ? df.stages.findIndex((s) => s.name === this.req.target!.toLowerCase()) : df.stages.length - 1;
    if (targetIdx < 0) throw invalid(`failed to reach build target ${this.req.target} in Dockerfile`);
    const bases = df.stages.map((s) => this.expand(s.base, (n) => meta.get(n)));
    const needed = this.neededStages(df.stages, bases, targetIdx);
    this.total = df.stages.filter((s) => needed.has(s.index)).reduce((n, s) => n + s.instructions.length, 0);
    let last: Image | undefined;
    for (const s of df.stages) {
      if (!needed.has(s.index)) continue;
      last = await this.runStage(s, bases[s.index]!, meta, s.index === targetIdx);
      this.stages.set(s.index, last);
      if (s.name) this.names.set(s.name, s.index);
      if (s.index === targetIdx) break;
    }
    if (!last) last = await this.d.derive(undefined, {}, '');
    const unused = Object.keys(this.req.buildArgs).filter((k) => !this.usedArgs.has(k) && !PROXY_ARGS.has(k));
    if (unused.length) this.out.stream(`[Warning] One or more build-args [${unused.join(' ')}] were not consumed\n`);
    return last;
  }

  /** The target and the stages it reaches through FROM and COPY --from. */
  private neededStages(stages: Stage[], bases: string[], target: number): Set<number> {
    const byName = new Map(stages.filter((s) => s.name).map((s) => [s.name!, s.index]));
    const need = new Set<number>();
    const visit = (i: number) => {
      if (need.has(i)) return;
      need.add(i);
      const dep = byName.get(bases[i]!.toLowerCase());
      if (dep !== undefined && dep < i) visit(dep);
      for (const ins of stages[i]!.instructions) {
        const from = ins.flags.from;
        if (!from || (ins.keyword !== 'COPY' && ins.keyword !== 'ADD')) continue;
        const j = /^\d+$/.test(from) ? Number(from) : byName.get(from.toLowerCase());
        if (j !== undefined && j < i) visit(j);
      }
    };
    visit(target);
    return need;
  }

  private buildArg(name: string): string | undefined {
    if (!(name in this.req.buildArgs)) return undefined;
    this.usedArgs.add(name);
    const v = this.req.buildArgs[name];
    return v === null || v === undefined ? undefined : v;
  }

  private expand(word: string, lookup: (n: string) => string | undefined): string {
    return expandWord(word, lookup, this.escape);
  }

  private header(ins: Instruction | string): void {
    this.step++;
    this.out.stream(`Step ${this.step}/${this.total} : ${typeof ins === 'string' ? ins : ins.original}\n`);
  }

  // ---------- stages ----------

  private async runStage(s: Stage, base: string, meta: Map<string, string | undefined>, isTarget: boolean): Promise<Image | undefined> {
    this.header(s.instructions[0]!); // the stage's FROM
    const platform = s.platform && this.expand(s.platform, (n) => meta.get(n));
    if (platform && !/^linux\/amd64(\/v1)?$/.test(platform)) throw invalid(`FROM --platform=${platform}: this engine builds linux/amd64 images only (line ${s.line})`);
    let image: Image | undefined;
    const prior = this.names.get(base.toLowerCase());
    if (base.toLowerCase() === 'scratch') image = undefined;
    else if (prior !== undefined) image = this.stages.get(prior);
    else image = await this.d.pull(base, this.req.pull);
    this.out.stream(image ? ` ---> ${short(image.id)}\n` : ` ---> \n`);
    const st: StageState = {
      stage: s,
      image,
      config: clone(image?.config.config ?? {}),
      args: new Map(),
      shell: image?.config.config?.Shell ?? DEFAULT_SHELL,
      cmdInherited: !!image?.config.config?.Cmd,
    };
    // a base image's ONBUILD triggers run first, and are not inherited further
    const triggers = st.config.OnBuild ?? [];
    if (triggers.length) {
      this.out.stream(`# Executing ${triggers.length} build trigger${triggers.length > 1 ? 's' : ''}\n`);
      st.config.OnBuild = null;
      for (const t of triggers) await this.dispatch(st, parseInstruction(t, this.escape), meta, false);
    }
    for (const ins of s.instructions.slice(1)) {
      if (this.req.signal.aborted) throw new SampanError('UNAVAILABLE', 'build cancelled: the client went away');
      await this.dispatch(st, ins, meta, true);
    }
    if (isTarget && Object.keys(this.req.labels).length) {
      st.config.Labels = { ...(st.config.Labels ?? {}), ...this.req.labels };
      const text = Object.entries(this.req.labels).map(([k, v]) => `${JSON.stringify(k)}=${JSON.stringify(v)}`).join(' ');
      await this.metaStep(st, `LABEL ${text}`);
    }
    return st.image;
  }

  /** Variables an instruction may expand: the stage's env first, then its ARGs. */
  private lookup(st: StageState): (n: string) => string | undefined {
    return (n) => {
      for (const e of st.config.Env ?? []) if (e.startsWith(`${n}=`)) return e.slice(n.length + 1);
      return st.args.get(n);
    };
  }

  private async dispatch(st: StageState, ins: Instruction, meta: Map<string, string | undefined>, counted: boolean): Promise<void> {
    if (counted) this.header(ins);
    const x = (w: string) => this.expand(w, this.lookup(st));
    const c = st.config;
    switch (ins.keyword) {
      case 'ENV': {
        const pairs = keyValues(ins).map(({ key, value }) => [x(key), x(value ?? '')] as const);
        const env = new Map((c.Env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e] as const));
        for (const [k, v] of pairs) {
          env.delete(k);
          env.set(k, `${k}=${v}`);
        }
        c.Env = [...env.values()];
        return this.metaStep(st, `ENV ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`);
      }
      case 'ARG': {
        for (const { key, value } of keyValues(ins)) {
          const given = this.buildArg(key);
          const dflt = value === undefined ? (meta.has(key) ? meta.get(key) : undefined) : x(value);
          st.args.set(key, given ?? dflt);
        }
        return this.metaStep(st, `ARG ${keyValues(ins).map((p) => (p.value === undefined ? p.key : `${p.key}=${p.value}`)).join(' ')}`);
      }
      case 'LABEL': {
        const pairs = keyValues(ins).map(({ key, value }) => [x(key), x(value ?? '')] as const);
        c.Labels = { ...(c.Labels ?? {}) };
        for (const [k, v] of pairs) c.Labels[k] = v;
        return this.metaStep(st, `LABEL ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`);
      }
      case 'MAINTAINER':
        return this.metaStep(st, `MAINTAINER ${ins.raw}`, x(ins.raw));
      case 'WORKDIR': {
        const dir = x(ins.raw.trim());
        c.WorkingDir = path.posix.resolve(c.WorkingDir || '/', dir);
        return this.metaStep(st, `WORKDIR ${c.WorkingDir}`);
      }
      case 'USER':
        c.User = x(ins.raw.trim());
        return this.metaStep(st, `USER ${c.User}`);
      case 'EXPOSE': {
        c.ExposedPorts = { ...(c.ExposedPorts ?? {}) };
        const ports: string[] = [];
        for (const w of expandWords(ins.raw, this.lookup(st), this.escape)) for (const p of exposePorts(w)) ports.push(p);
        for (const p of ports) c.ExposedPorts[p] = {};
        return this.metaStep(st, `EXPOSE ${ports.join(' ')}`);
      }
      case 'VOLUME': {
        const vols = ins.json ? ins.args.map(x) : expandWords(ins.raw, this.lookup(st), this.escape);
        if (!vols.length || vols.some((v) => !v.trim())) throw invalid(`VOLUME specified can not be an empty string (line ${ins.line})`);
        c.Volumes = { ...(c.Volumes ?? {}) };
        for (const v of vols) c.Volumes[v] = {};
        return this.metaStep(st, `VOLUME [${vols.join(' ')}]`);
      }
      case 'STOPSIGNAL': {
        const sig = x(ins.raw.trim());
        parseSignal(sig);
        c.StopSignal = sig;
        return this.metaStep(st, `STOPSIGNAL ${sig}`);
      }
      case 'CMD':
        c.Cmd = ins.json ? ins.args : [...st.shell, ins.args[0] ?? ''];
        st.cmdInherited = false;
        return this.metaStep(st, `CMD ${JSON.stringify(c.Cmd)}`);
      case 'ENTRYPOINT':
        c.Entrypoint = ins.json ? ins.args : [...st.shell, ins.args[0] ?? ''];
        if (st.cmdInherited) c.Cmd = null;
        return this.metaStep(st, `ENTRYPOINT ${JSON.stringify(c.Entrypoint)}`);
      case 'SHELL':
        if (!ins.json || !ins.args.length) throw invalid(`SHELL requires the arguments to be in JSON form (line ${ins.line})`);
        st.shell = ins.args;
        c.Shell = ins.args;
        return this.metaStep(st, `SHELL ${JSON.stringify(ins.args)}`);
      case 'HEALTHCHECK':
        c.Healthcheck = healthcheck(ins);
        return this.metaStep(st, `HEALTHCHECK ${JSON.stringify(c.Healthcheck)}`);
      case 'ONBUILD': {
        // the parser checked the trigger (ins.onbuild); the image keeps its text
        const trigger = ins.args[0] ?? ins.raw.trim();
        c.OnBuild = [...(c.OnBuild ?? []), trigger];
        return this.metaStep(st, `ONBUILD ${trigger}`);
      }
      case 'RUN':
        for (const f of ['mount', 'network', 'security']) if (ins.flags[f] !== undefined) throw invalid(`RUN --${f} needs BuildKit; the classic builder does not support it (line ${ins.line})`);
        return this.runStep(st, ins);
      case 'COPY':
      case 'ADD':
        return this.copyStep(st, ins);
      default:
        throw invalid(`unknown instruction: ${ins.keyword} (line ${ins.line})`);
    }
  }

  // ---------- steps ----------

  /** A step through the cache: reuse the image a same parent + instruction made before, else make it. */
  private async cached(st: StageState, createdBy: string, make: () => Promise<Image>): Promise<void> {
    if (await this.cacheHit(st, createdBy)) return;
    const key = this.d.cache.key(st.image?.id ?? 'scratch', createdBy);
    const img = await make();
    this.created.push(img.id);
    await this.d.cache.put(key, img.id);
    st.image = img;
    this.out.stream(` ---> ${short(img.id)}\n`);
  }

  /** The step's image from the cache, taken as the stage's current one; false on a miss (or --no-cache). */
  private async cacheHit(st: StageState, createdBy: string): Promise<boolean> {
    if (this.req.noCache) return false;
    let img: Image | undefined;
    if (this.req.cacheFrom.length) img = this.fromCacheSources(st.image?.id, createdBy) ?? (await this.fromSourceHistory(st, createdBy));
    else {
      const hit = await this.d.cache.get(this.d.cache.key(st.image?.id ?? 'scratch', createdBy));
      img = hit ? this.d.store.byId(hit) : undefined;
    }
    if (!img) return false;
    this.out.stream(` ---> Using cache\n ---> ${short(img.id)}\n`);
    st.image = img;
    st.config = clone(img.config.config ?? {});
    return true;
  }

  /**
   * With cachefrom, Docker takes a step from the cache only if it made one of the images named or one of their
   * parents: the image among those whose parent is this step's and whose last history entry is this instruction.
   */
  private fromCacheSources(parent: Digest | undefined, createdBy: string): Image | undefined {
    if (!this.cacheSources) {
      this.cacheSources = new Map();
      for (const ref of this.req.cacheFrom) {
        // a name that is not here is no source, as dockerd ignores it
        const named = this.d.store.find(ref);
        if (named) this.historySources.push(named);
        for (let img = named; img && !this.cacheSources.has(img.id); img = img.parent && this.d.store.byId(img.parent)) this.cacheSources.set(img.id, img);
      }
    }
    for (const img of this.cacheSources.values()) if (img.parent === parent && img.config.history?.at(-1)?.created_by === createdBy) return img;
    return undefined;
  }

  /**
   * dockerd's match for a cachefrom image that has no parents here (pulled, loaded): its history and layers begin
   * with the step's parent's, and its next history entry is this instruction. That is the image itself at its last
   * entry; before that, an image of the parent's layers and the image's next one, with the step's config.
   */
  private async fromSourceHistory(st: StageState, createdBy: string): Promise<Image | undefined> {
    const parentHistory = st.image?.config.history ?? [];
    const parentLayers = st.image?.layers ?? [];
    const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
    for (const target of this.historySources) {
      const history = target.config.history ?? [];
      const entry = history[parentHistory.length];
      if (!entry || entry.created_by !== createdBy || parentLayers.length > target.layers.length) continue;
      if (!parentHistory.every((h, i) => same(h, history[i])) || !parentLayers.every((l, i) => l.diffId === target.layers[i]!.diffId)) continue;
      // once one image matched, the build follows it alone (as dockerd)
      this.historySources = [target];
      if (parentHistory.length === history.length - 1) return target;
      const layers = target.layers.slice(0, parentLayers.length + (entry.empty_layer ? 0 : 1));
      const config: ImageConfig = {
        created: entry.created,
        author: target.config.author,
        architecture: target.config.architecture,
        os: target.config.os,
        config: clone(st.config),
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
        history: [...parentHistory, entry],
      };
      return this.d.store.add(config, layers, { parent: st.image?.id });
    }
    return undefined;
  }

  private metaStep(st: StageState, text: string, author?: string): Promise<void> {
    const createdBy = `/bin/sh -c #(nop) ${text.startsWith('WORKDIR') || text.startsWith('COPY') || text.startsWith('ADD') ? '' : ' '}${text}`;
    const config = clone(st.config);
    return this.cached(st, createdBy, () => this.d.derive(st.image, config, createdBy, author));
  }

  /** The build args a RUN sees: declared ones with a value, unless ENV set the same name. */
  private runArgs(st: StageState): string[] {
    const env = new Set((st.config.Env ?? []).map((e) => e.slice(0, e.indexOf('='))));
    const out: string[] = [];
    for (const [k, v] of st.args) if (v !== undefined && !env.has(k)) out.push(`${k}=${v}`);
    for (const k of PROXY_ARGS) {
      const v = this.buildArg(k);
      if (v !== undefined && !st.args.has(k)) out.push(`${k}=${v}`);
    }
    return out;
  }

  private async runStep(st: StageState, ins: Instruction): Promise<void> {
    let cmd: string[];
    const heredoc = ins.heredocs[0];
    if (ins.json) cmd = ins.args;
    else if (heredoc && ins.heredocs.length === 1 && /^<<-?["']?\w+["']?$/.test(ins.args[0]?.trim() ?? '')) cmd = [...st.shell, heredoc.content];
    else cmd = [...st.shell, ins.args[0] ?? ''];
    const args = this.runArgs(st);
    const visibleArgs = args.filter((a) => !PROXY_ARGS.has(a.slice(0, a.indexOf('='))));
    const createdBy = `${visibleArgs.length ? `|${visibleArgs.length} ${visibleArgs.join(' ')} ` : ''}${cmd.join(' ')}`;
    await this.cached(st, createdBy, async () => {
      const base = st.image ?? (await this.scratchImage());
      st.image = base;
      const body = {
        Image: base.id,
        Cmd: cmd,
        Entrypoint: [''],
        Env: [...(st.config.Env ?? []), ...args],
        User: st.config.User ?? '',
        WorkingDir: st.config.WorkingDir ?? '',
        AttachStdout: true,
        AttachStderr: true,
        Labels: {},
        HostConfig: { NetworkMode: this.req.networkMode || 'default', ExtraHosts: this.req.extraHosts, ShmSize: this.req.shmSize || undefined },
      };
      const { Id: cid } = await this.d.containers.create(body);
      this.out.stream(` ---> Running in ${short(cid)}\n`);
      let ok = false;
      try {
        let outputDone: Promise<void> = Promise.resolve();
        await this.d.containers.start(cid, [
          async (sock) => {
            const conn = await AttachConnection.connect(sock);
            // stderr in red, as dockerd's classic builder sends it
            conn.on('data', (s: number, buf: Buffer) => this.out.stream(s === 2 ? `\x1b[91m${buf.toString()}\x1b[0m` : buf.toString()));
            outputDone = new Promise((r) => conn.once('close', () => r()));
          },
        ]);
        // the client may have gone while the step started (its first output can fill what it wanted to read)
        const { signal } = this.req;
        const aborted = signal.aborted ? Promise.resolve() : new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
        const res = await this.d.containers.wait(cid, 'not-running', aborted);
        await Promise.race([outputDone, new Promise((r) => setTimeout(r, 2000))]);
        if (res.StatusCode !== 0) {
          throw new BuildStepError(`The command '${cmd.join(' ')}' returned a non-zero code: ${res.StatusCode}`, res.StatusCode);
        }
        const img = await this.d.commit(cid, clone(st.config), createdBy);
        ok = true;
        return img;
      } finally {
        // a failed step's container goes too (dockerd keeps it unless --force-rm): the build leaves nothing behind
        if (this.req.forceRm || this.req.rm || !ok) {
          this.out.stream(`Removing intermediate container ${short(cid)}\n`);
          await this.d.containers.remove(cid, { force: true }).catch(() => undefined);
        }
      }
    });
  }

  private async scratchImage(): Promise<Image> {
    return this.d.derive(undefined, {}, '');
  }

  private async copyStep(st: StageState, ins: Instruction): Promise<void> {
    const x = (w: string) => this.expand(w, this.lookup(st));
    const words = ins.args.map(x);
    if (words.length < 2) throw invalid(`${ins.keyword} requires at least two arguments, but only one was provided. Destination could not be determined. (line ${ins.line})`);
    const destWord = words[words.length - 1]!;
    const srcWords = words.slice(0, -1);
    const isAdd = ins.keyword === 'ADD';
    const urls = isAdd ? srcWords.filter((w) => /^https?:\/\//i.test(w)) : [];
    const plan: CopyPlan = {
      destIsDir: destWord.endsWith('/') || destWord === '.' || destWord.endsWith('/.'),
      dest: path.posix.resolve(st.config.WorkingDir || '/', destWord),
      from: ins.flags.from ? x(ins.flags.from) : undefined,
      chmod: ins.flags.chmod ? parseChmod(ins.flags.chmod) : undefined,
      chown: ins.flags.chown ? x(ins.flags.chown) : undefined,
      heredocs: ins.heredocs.filter((h) => srcWords.some((w) => w.startsWith('<<') && w.replace(/^<<-?["']?|["']$/g, '') === h.name)),
      files: srcWords.filter((w) => !w.startsWith('<<') && !urls.includes(w)),
      urls,
    };
    if (ins.flags.checksum !== undefined && (urls.length !== 1 || srcWords.length !== 1)) throw invalid(`ADD --checksum needs exactly one URL source (line ${ins.line})`);
    if (ins.flags['keep-git-dir'] !== undefined) throw invalid(`ADD --keep-git-dir: git sources are not supported (line ${ins.line})`);
    // an image's files never change: their digest is remembered, so a cached COPY --from needs no mount at all
    const fromImage = plan.from ? await this.fromImage(plan.from) : undefined;
    const memoKey = fromImage && !urls.length && !plan.heredocs.length ? `${fromImage.id}\0${plan.files.join('\0')}` : undefined;
    const memo = memoKey ? this.d.cache.sourceHash(memoKey) : undefined;
    if (memo && (await this.cacheHit(st, copyCreatedBy(ins.keyword, plan, memo.kind, memo.hash, '')))) return;
    // context sources: the digest from the context's index, so a cached step never unpacks the context
    const indexed = !fromImage && !urls.length && plan.files.length ? this.req.context.sourceDigest(plan.files) : undefined;
    const heredocText = plan.heredocs.map((h) => `${h.name}:${h.content}`).join('\0');
    if (indexed && (await this.cacheHit(st, copyCreatedBy(ins.keyword, plan, indexed.kind, indexed.hash, heredocText)))) return;
    const downloads = await fs.mkdtemp(path.join(os.tmpdir(), 'sampan-add-url-'));
    try {
      await this.withSourceRoot(fromImage, (root, keepOwner) => this.copyFrom(st, ins, plan, root, keepOwner, downloads, memoKey, indexed));
    } finally {
      await fs.rm(downloads, { recursive: true, force: true });
    }
  }

  private async copyFrom(st: StageState, ins: Instruction, p: CopyPlan, srcRoot: string, keepOwner: boolean, downloads: string, memoKey?: string, indexed?: { hash: string; kind: 'dir' | 'file' }): Promise<void> {
    const sources = p.files.length ? await findSources(srcRoot, p.files, p.from ? 'stage' : 'context') : [];
    for (const u of p.urls) sources.push(await download(u, downloads, this.req.signal, ins.flags.checksum));
    const many = sources.length + p.heredocs.length > 1;
    if (!sources.length && !p.heredocs.length) throw invalid(`${ins.keyword} failed: no source files were specified (line ${ins.line})`);
    if (many && !p.destIsDir) throw invalid(`When using ${ins.keyword} with more than one source file, the destination must be a directory and end with a / (line ${ins.line})`);
    const hash = indexed?.hash ?? (await hashSources(sources, keepOwner));
    const kind = indexed?.kind ?? (sources.length === 1 && sources[0]!.stat.isDirectory() ? 'dir' : 'file');
    if (memoKey) this.d.cache.rememberSourceHash(memoKey, { kind, hash });
    const createdBy = copyCreatedBy(ins.keyword, p, kind, hash, p.heredocs.map((h) => `${h.name}:${h.content}`).join('\0'));
    await this.cached(st, createdBy, async () => {
      const base = st.image ?? (await this.scratchImage());
      st.image = base;
      const { Id: cid } = await this.d.containers.create({ Image: base.id, Cmd: ['/nonexistent'], Entrypoint: [''], Labels: {}, HostConfig: { NetworkMode: 'none' } });
      try {
        await this.d.containers.withRootfs(cid, async (rootfs) => {
          const o = { chown: p.chown ? await resolveChown(rootfs, p.chown) : undefined, chmod: p.chmod, keepOwner };
          for (const src of sources) {
            // ADD unpacks local archives; never one from a URL or another stage
            if (ins.keyword === 'ADD' && !p.from && !src.remote && src.stat.isFile() && (await isArchive(src.abs))) await extractArchive(src.abs, rootfs, p.dest, o);
            else await copySource(rootfs, src, p.dest, p.destIsDir || many, o);
          }
          for (const h of p.heredocs) await writeHeredoc(rootfs, h.name, h.content, p.dest, p.destIsDir, o);
        });
        return await this.d.commit(cid, clone(st.config), createdBy);
      } finally {
        await this.d.containers.remove(cid, { force: true }).catch(() => undefined);
      }
    });
  }

  /** COPY --from: an earlier stage (by name or index) or an image. */
  private async fromImage(from: string): Promise<Image> {
    let img: Image | undefined;
    const stage = /^\d+$/.test(from) ? Number(from) : this.names.get(from.toLowerCase());
    if (stage !== undefined && this.stages.has(stage)) img = this.stages.get(stage);
    else if (/^\d+$/.test(from)) throw invalid(`COPY --from=${from}: no such build stage (stages are counted from 0, and only earlier ones can be named)`);
    else img = await this.d.pull(from, false);
    if (!img) throw invalid(`COPY --from=${from}: the stage has an empty file system (scratch)`);
    return img;
  }

  /** COPY's source root: the context, or the root of an image (--from), mounted meanwhile. */
  private async withSourceRoot(img: Image | undefined, fn: (root: string, keepOwner: boolean) => Promise<void>): Promise<void> {
    if (!img) return fn(await this.req.context.unpack(), false);
    const { Id: cid } = await this.d.containers.create({ Image: img.id, Cmd: ['/nonexistent'], Entrypoint: [''], Labels: {}, HostConfig: { NetworkMode: 'none' } });
    try {
      await this.d.containers.withRootfs(cid, (root) => fn(root, true));
    } finally {
      await this.d.containers.remove(cid, { force: true }).catch(() => undefined);
    }
  }
}

/** COPY/ADD's history text and cache key: the sources' digest stands for their content. */
function copyCreatedBy(keyword: string, p: CopyPlan, kind: string, hash: string, heredocs: string): string {
  const opts = [p.from && ` from ${p.from}`, p.chown && ` chown=${p.chown}`, p.chmod !== undefined && ` chmod=${p.chmod.toString(8)}`].filter(Boolean).join('');
  return `/bin/sh -c #(nop) ${keyword} ${kind}:${hash}${heredocs ? `+heredoc:${heredocs.length}` : ''}${opts} in ${p.dest} `;
}

/** A RUN that exited non-zero: Docker's message and the code. */
export class BuildStepError extends SampanError {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super('INVALID_ARGUMENT', message);
  }
}
