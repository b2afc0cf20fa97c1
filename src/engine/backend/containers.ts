/** The Docker API's containers backend over this host's container service (docker ps/run/logs/attach/cp/…). */
import path from 'node:path';
import type { Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ContainerBackend, ContainerListOptions, AttachOptions, CommitOptions, Filters, LogsOptions, Output } from '../../docker-api/index.js';
import type { ContainerInspect, ContainerSummary, IdResponse } from '../../lib/docker-types.js';
import { internal, invalid, notImplemented } from '../../lib/errors.js';
import { frame } from '../../lib/stdcopy.js';
import { drained } from '../../lib/streams.js';
import type { Engine } from '../engine.js';
import type { ContainerRecord, ContainerConfig } from '../containers/model.js';
import { DEFAULT_DETACH_KEYS, parseDetachKeys } from '../containers/detach.js';
import { readLog, parseUnixNano } from '../containers/logs.js';
import { readable } from '../containers/logconfig.js';
import { pruneContainers } from '../containers/prune.js';
import { sampleStats, type StatsSample } from '../containers/stats.js';
import { labelMatch } from '../images/service.js';
import { bridgeAttach } from './attach.js';
import { getArchive, putArchive, statPath } from './archive.js';
import { containerNetworks, portSummary } from './netviews.js';
import { containerInspect, containerSummary } from './views.js';

export const RAW = 'application/vnd.docker.raw-stream';
export const MUX = 'application/vnd.docker.multiplexed-stream';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Resolves when the client goes away. */
const gone = (signal: AbortSignal) => new Promise<void>((r) => (signal.aborted ? r() : signal.addEventListener('abort', () => r(), { once: true })));

/** Docker's publish/expose filter values: "80", "80/udp", "8000-8080/tcp" → the set of "port/proto". */
function portFilter(name: string, vals: string[]): Set<string> {
  const out = new Set<string>();
  for (const v of vals) {
    const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/.exec(v);
    if (!m) throw invalid(`invalid value for filter '${name}': ${v}`);
    const [start, end] = [Number(m[1]), Number(m[2] ?? m[1])];
    if (end < start || end > 65535) throw invalid(`invalid port range for filter '${name}': ${v}`);
    for (let p = start; p <= end; p++) out.add(`${p}/${m[3] ?? 'tcp'}`);
  }
  return out;
}

export class EngineContainers implements ContainerBackend {
  constructor(private readonly e: Engine) {}

  private get svc() {
    return this.e.containers;
  }

  /** `docker ps`, with all of Docker's filters. */
  async list({ all, limit, size, filters }: ContainerListOptions): Promise<ContainerSummary[]> {
    const svc = this.svc;
    let list = svc.list().filter((c) => all || c.State.Status === 'running' || c.State.Status === 'paused' || c.State.Status === 'restarting' || filters.has('status'));
    // publish and expose match together: a container passes if either matches one of its ports
    const publish = portFilter('publish', filters.get('publish') ?? []);
    const expose = portFilter('expose', filters.get('expose') ?? []);
    if (publish.size || expose.size) {
      list = list.filter((c) => portSummary(c).some((p) => publish.has(`${p.PublicPort}/${p.Type}`) || expose.has(`${p.PrivatePort}/${p.Type}`)));
    }
    for (const [k, vals] of filters) list = list.filter((c) => this.matches(c, k, vals));
    list.sort((a, b) => (a.Created < b.Created ? 1 : -1));
    if (limit > 0) list = list.slice(0, limit);
    return Promise.all(list.map(async (c) => ({ ...containerSummary(c, c.Config.Image), ...(size ? await svc.sizes(c) : {}) })));
  }

  private matches(c: ContainerRecord, k: string, vals: string[]): boolean {
    switch (k) {
      case 'name':
        return vals.some((v) => new RegExp(v.replace(/^\//, '')).test(c.Name));
      case 'id':
        return vals.some((v) => c.Id.startsWith(v));
      case 'label':
        return vals.every((v) => labelMatch(c.Config.Labels, v));
      case 'status': {
        const s = c.State.Status === 'exited' && !c.HasBeenStarted && c.State.FinishedAt.startsWith('0001') ? 'created' : c.State.Status;
        return vals.includes(s);
      }
      case 'exited':
        return c.State.Status === 'exited' && vals.includes(String(c.State.ExitCode));
      case 'ancestor':
        return vals.some((v) => {
          const img = this.e.images.store.find(v);
          return (img && img.id === c.Image) || c.Config.Image === v;
        });
      case 'volume':
        return vals.some((v) => c.Mounts.some((m) => m.Name === v || m.Destination === v));
      case 'network': {
        const attached = Object.entries(containerNetworks(c)).map(([name, ep]) => [name, ep.NetworkID]);
        return vals.some((v) => attached.some(([name, id]) => name === v || (id && id.startsWith(v))));
      }
      case 'publish':
      case 'expose':
        return true;
      case 'before':
      case 'since': {
        const ref = this.svc.get(vals[0]!);
        return k === 'before' ? c.Created < ref.Created : c.Created > ref.Created;
      }
      case 'health':
        for (const v of vals) if (!['starting', 'healthy', 'unhealthy', 'none'].includes(v)) throw invalid(`Unrecognised filter value for health: ${v}`);
        return vals.includes(c.State.Health?.Status ?? 'none');
      default:
        throw invalid(`invalid filter '${k}'`);
    }
  }

  create(body: unknown, name: string | undefined, id?: string): Promise<IdResponse> {
    return this.svc.create(body, name, id);
  }

  async inspect(id: string, o: { size: boolean }): Promise<ContainerInspect> {
    const svc = this.svc;
    const c = svc.get(id);
    const dir = svc.dir(c.Id);
    const lowers = c.ImageChain.map((ch) => this.e.layers.diffDir(ch as `sha256:${string}`)).reverse();
    return { ...containerInspect(c, { dir, fs: path.join(dir, 'fs'), lowers }, this.e.execs.idsFor(c.Id)), ...(o.size ? await svc.sizes(c) : {}) };
  }

  start(id: string): Promise<void> {
    return this.svc.start(id);
  }
  stop(id: string, o: { timeout?: number; signal?: string }): Promise<void> {
    return this.svc.stop(id, o.timeout, o.signal);
  }
  restart(id: string, o: { timeout?: number; signal?: string }): Promise<void> {
    return this.svc.restart(id, o.timeout, o.signal);
  }
  kill(id: string, signal?: string): Promise<void> {
    return this.svc.kill(id, signal);
  }
  pause(id: string): Promise<void> {
    return this.svc.pause(id);
  }
  unpause(id: string): Promise<void> {
    return this.svc.unpause(id);
  }

  /**
   * `id` may be a legacy link's name, PARENT/ALIAS: with `link` that link goes (`docker rm --link`), without it the
   * container the name resolves to, as Docker does.
   */
  async remove(id: string, o: { force: boolean; volumes: boolean; link: boolean }): Promise<void> {
    const svc = this.svc;
    const slash = id.indexOf('/');
    if (slash > 0) {
      const [parent, alias] = [id.slice(0, slash), id.slice(slash + 1)];
      if (o.link) return svc.removeLink(parent, alias);
      id = svc.linked(parent, alias).child.Id;
    } else {
      id = svc.get(id).Id;
      // Docker's message and status (a plain error there)
      if (o.link) throw internal('Conflict, cannot remove the default link name of the container');
    }
    await svc.remove(id, { force: o.force, volumes: o.volumes });
    this.e.execs.dropContainer(id);
  }

  rename(id: string, name: string): Promise<void> {
    return this.svc.rename(id, name);
  }
  update(id: string, body: Record<string, unknown>): Promise<{ Warnings: string[] }> {
    return this.svc.update(id, body);
  }

  async wait(id: string, condition: 'not-running' | 'next-exit' | 'removed', signal: AbortSignal) {
    // the service checks the container at once: a missing one is a 404 before the answer starts
    return { result: this.svc.wait(id, condition, gone(signal)) };
  }

  top(id: string, psArgs: string) {
    return this.svc.top(id, psArgs);
  }
  resize(id: string, h: number, w: number): Promise<void> {
    return this.svc.resize(id, h, w);
  }
  changes(id: string) {
    return this.e.commits.changes(id);
  }

  async export(id: string, out: Output): Promise<void> {
    await this.e.commits.export(id, async (tar) => {
      await pipeline(tar, out.open('application/x-tar'));
    });
  }

  async logs(id: string, o: LogsOptions, out: Output): Promise<void> {
    const svc = this.svc;
    const c = svc.get(id);
    if (!readable(c.HostConfig.LogConfig)) throw notImplemented('configured logging driver does not support reading');
    if (!o.stdout && !o.stderr) throw invalid('You must choose at least one stream');
    const tty = c.Config.Tty;
    const sinceNano = parseUnixNano(o.since ?? null);
    const untilNano = parseUnixNano(o.until ?? null);
    const res = out.open(tty ? RAW : MUX);
    const stop = Promise.race([gone(out.signal), svc.stopped(c.Id)]);
    for await (const entry of readLog(svc.logPath(c.Id), { tail: o.tail, sinceNano, untilNano, follow: o.follow, stop })) {
      if (res.destroyed) break;
      if ((entry.stream === 'stdout' && !o.stdout) || (entry.stream === 'stderr' && !o.stderr)) continue;
      const buf = Buffer.from(`${o.timestamps ? `${entry.time} ` : ''}${entry.text}${entry.partial ? '' : '\n'}`);
      // a client that reads slowly keeps the log where it is instead of all of it in this process's memory
      if (!res.write(tty ? buf : frame(entry.stream === 'stdout' ? 1 : 2, buf))) await drained(res).catch(() => undefined);
    }
    res.end();
  }

  async attach(id: string, o: AttachOptions, out: Output): Promise<void> {
    const { e, svc } = { e: this.e, svc: this.svc };
    const c = svc.get(id);
    const streams = { tty: c.Config.Tty, stdin: o.stdin, stdout: o.stdout, stderr: o.stderr, detachKeys: parseDetachKeys(o.detachKeys ?? DEFAULT_DETACH_KEYS) };
    if (!o.stream && !o.logs) throw invalid('at least one of stream or logs must be set');
    if (c.State.Status === 'removing' || c.State.Status === 'dead') throw invalid('You cannot attach to a stopped container, start it first');
    let finished!: () => void;
    const ended = new Promise<void>((r) => (finished = r));
    let replayed!: () => void;
    const logsSent = new Promise<void>((r) => (replayed = r));
    let client: Duplex | undefined;
    const hook = async (sock: string) => {
      // a start waits for the logs to go out: the new run's output comes after them, and only once
      await logsSent;
      if (!client || client.destroyed) return;
      const { done } = await bridgeAttach(sock, client, streams);
      void done.then((detached) => {
        if (detached) e.events.emit('container', 'detach', c.Id, svc.attrs(c));
        finished();
      });
    };
    // registered before the response headers go out: clients start the container as soon as they have them
    const attaching = o.stream ? svc.attach(c.Id, hook) : Promise.resolve();
    attaching.catch(() => undefined); // awaited below
    try {
      client = out.hijack(c.Config.Tty ? RAW : MUX);
      e.events.emit('container', 'attach', c.Id, svc.attrs(c));
      if (o.logs) {
        for await (const entry of readLog(svc.logPath(c.Id), { sinceNano: 0n, untilNano: 0n, follow: false })) {
          const buf = Buffer.from(`${entry.text}${entry.partial ? '' : '\n'}`);
          client.write(c.Config.Tty ? buf : frame(entry.stream === 'stdout' ? 1 : 2, buf));
        }
      }
    } catch (err) {
      svc.dropPendingAttach(c.Id, hook);
      client?.destroy();
      throw err;
    } finally {
      replayed();
    }
    if (!o.stream) {
      client.end();
      return;
    }
    const drop = () => {
      svc.dropPendingAttach(c.Id, hook);
      finished();
    };
    client.once('close', drop);
    if (client.destroyed) drop();
    const unsubscribe = svc.onStartFailure(c.Id, drop);
    await attaching;
    await ended;
    unsubscribe();
    if (!client.destroyed) client.end();
  }

  async stats(id: string, o: { stream: boolean; oneShot: boolean }, out: Output): Promise<void> {
    const svc = this.svc;
    const rec = svc.get(id);
    const sample = (prev?: StatsSample) => {
      const running = rec.State.Status === 'running' || rec.State.Status === 'paused';
      return sampleStats({ id: rec.Id, name: rec.Name, cgroupsPath: svc.cgroupsPath(rec), pid: rec.State.Pid, running }, prev);
    };
    if (!o.stream) {
      // a short earlier sample, so precpu_stats gives the CLI a sensible CPU %
      const prev = o.oneShot ? undefined : await sample();
      if (prev) await sleep(500);
      const s = await sample(prev);
      out.open('application/json').end(JSON.stringify(s));
      return;
    }
    const res = out.open('application/json');
    let prev: StatsSample | undefined;
    while (!out.signal.aborted && !res.destroyed) {
      const s = await sample(prev);
      res.write(JSON.stringify(s) + '\n');
      prev = s;
      for (let i = 0; i < 10 && !out.signal.aborted; i++) await sleep(100);
    }
    if (!res.writableEnded) res.end();
  }

  statPath(id: string, p: string) {
    return statPath(this.svc, id, p);
  }
  getArchive(id: string, p: string, out: Output): Promise<void> {
    return getArchive(this.svc, id, p, out);
  }
  putArchive(id: string, p: string, tar: Readable): Promise<void> {
    return putArchive(this.svc, id, p, tar);
  }

  prune(filters: Filters) {
    return pruneContainers(this.svc, filters);
  }

  async commit(o: CommitOptions): Promise<IdResponse> {
    const img = await this.e.commits.commit(o.container, {
      containerConfig: o.config as Partial<ContainerConfig> | undefined,
      changes: o.changes,
      comment: o.comment,
      author: o.author,
      pause: o.pause,
      ref: o.ref,
    });
    return { Id: img.id };
  }
}
