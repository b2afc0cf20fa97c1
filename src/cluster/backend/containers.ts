/** The Docker API's containers over the cluster: list and find from the indexes, create through the scheduler, the rest on the owner. */
import type { Readable } from 'node:stream';
import type { AttachOptions, ContainerBackend, ContainerListOptions, Filters, LogsOptions, Output, PathStat } from '../../docker-api/index.js';
import type { ContainerInspect, ContainerSummary, ContainerTopResponse, ContainerWaitResponse, FilesystemChange, IdResponse } from '../../lib/docker-types.js';
import { conflict, invalid, isCode, unavailable } from '../../lib/errors.js';
import { newId } from '../../lib/ids.js';
import { statusText } from '../../lib/container-status.js';
import type { Commands, ReportedContainer } from '../../lib/node-protocol.js';
import { schedulingRequest } from '../request.js';
import type { ContainerEntry, NewPlacement, NodeEntry } from '../state.js';
import { Cluster, notYet, passHijack, passStream } from './cluster.js';

const nameOf = (s: ReportedContainer) => (s.Names[0] ?? '').replace(/^\//, '');
const LISTED = new Set(['running', 'paused', 'restarting']);
/** `^NAME$` (or `^NODE/NAME$`) with nothing a regular expression would read otherwise but escaped dots. */
const EXACT_NAME = /^\^((?:[a-zA-Z0-9_-]|\\\.)+(?:\/(?:[a-zA-Z0-9_-]|\\\.)+)?)\$$/;

export class ClusterContainers implements ContainerBackend {
  constructor(private readonly c: Cluster) {}

  async list({ all, limit, filters }: ContainerListOptions): Promise<ContainerSummary[]> {
    const st = this.c.state;
    // an exact name (`^NAME$`, also NODE/NAME) or a label filter starts from its index, the rest from every container
    const labels = filters.get('label') ?? [];
    const exact = filters.get('name')?.map((v) => EXACT_NAME.exec(v.replace(/^\^\/?/, '^'))?.[1]?.replace(/\\\./g, '.'));
    let pool: Iterable<ContainerEntry> = st.all();
    if (exact?.length && exact.every((n) => n !== undefined)) {
      pool = [...new Set(exact.map((n) => st.find(n!)).filter((e): e is ContainerEntry => !!e))];
    } else if (labels.length) {
      const [first, ...rest] = labels.map((l) => st.withLabel(l));
      pool = [...first!].filter((id) => rest.every((s) => s.has(id))).map((id) => st.entry(id)!);
    }
    const out: Array<{ s: ReportedContainer; node: NodeEntry }> = [];
    // a name filter is a regular expression: compiled once per list, not once per container
    const names = filters.get('name')?.map((v) => new RegExp(v));
    for (const e of pool) if ((all || filters.has('status') || LISTED.has(e.summary.State)) && this.matches(e, filters, names)) out.push({ s: e.summary, node: e.node });
    out.sort((a, b) => b.s.Created - a.s.Created);
    const now = Date.now();
    return out.slice(0, limit > 0 ? limit : undefined).map(({ s: { Facts, ...s }, node }) => ({
      ...s,
      // Swarm classic's names: /NODE/NAME
      Names: s.Names.map((n) => `/${node.rec.name}${n}`),
      Status: node.rec.state === 'up' ? statusText(Facts, now) : 'Host Down',
    }));
  }

  private matches(e: ContainerEntry, filters: Filters, nameRes: RegExp[] = []): boolean {
    const s = e.summary;
    for (const [k, vals] of filters) {
      if (!vals.length) continue;
      switch (k) {
        case 'name': {
          const name = nameOf(s);
          // as moby: the name with and without its slash (and Swarm's NODE/NAME)
          const node = e.node.rec.name;
          if (!nameRes.some((re) => re.test(name) || re.test(`/${name}`) || re.test(`${node}/${name}`) || re.test(`/${node}/${name}`))) return false;
          break;
        }
        case 'id':
          if (!vals.some((v) => s.Id.startsWith(v))) return false;
          break;
        case 'label':
          break; // from the index
        case 'status':
          if (!vals.includes(s.State)) return false;
          break;
        case 'ancestor':
          if (!vals.some((v) => s.Image === v || s.ImageID === v || s.ImageID.startsWith(`sha256:${v}`))) return false;
          break;
        case 'node':
          if (!vals.some((v) => e.node.rec.name === v || e.node.rec.id === v)) return false;
          break;
        case 'network':
          if (!vals.some((v) => Object.entries(s.NetworkSettings?.Networks ?? {}).some(([n, ep]) => n === v || ep.NetworkID?.startsWith(v)))) return false;
          break;
        case 'volume':
          if (!vals.some((v) => s.Mounts.some((m) => m.Name === v || m.Destination === v))) return false;
          break;
        default:
          throw invalid(`invalid filter '${k}'`);
      }
    }
    return true;
  }

  /** Scheduled onto a node; a name is unique cluster-wide. */
  async create(raw: unknown, name: string | undefined): Promise<IdResponse> {
    this.c.store.health.requireUp();
    const { req, body } = schedulingRequest(raw);
    if (name !== undefined && !/^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/.test(name)) throw invalid(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    const cname = name?.replace(/^\//, '');
    const addr = this.c.net.request(body);
    // a fixed address in a block another node leased can only be had on that node
    const holder = addr && this.c.net.holderOf(addr);
    if (cname) this.c.state.reserveName(cname);
    try {
      const node = holder ? this.holderNode(holder, addr.ip!) : (await this.c.schedule(req, 1))[0]!;
      return await this.createOn({ id: newId(), node, name: cname, ...(addr && { net: { network: addr.network.spec.id, ...(addr.ip && { want: addr.ip }) } }) }, body);
    } finally {
      if (cname) this.c.state.releaseName(cname);
    }
  }

  private holderNode(id: string, ip: string): NodeEntry {
    const n = this.c.state.nodes.get(id);
    if (!n || n.rec.state !== 'up') throw conflict(`Address ${ip} is in a block of node ${n?.rec.name ?? id}, which is down: it can be had there only`);
    return n;
  }

  /**
   * Creates (and with `start`, starts) under the id the manager chose on a node `schedule` gave (settled here), its
   * placement in etcd first. A create that
   * failed leaves neither container nor placement; one whose answer was lost (the node's connection went) keeps
   * its placement: repeating it on the same id, here or on another node, creates nothing twice.
   */
  async createOn(p: NewPlacement, body: Record<string, unknown>, o: { start?: boolean; placed?: boolean } = {}): Promise<IdResponse> {
    try {
      return await this.createPlaced(p, body, !!o.start, !!o.placed);
    } finally {
      this.c.settled(p.node);
    }
  }

  private async createPlaced(p: NewPlacement, body: Record<string, unknown>, start: boolean, placed: boolean): Promise<IdResponse> {
    if (!this.c.connected(p.node)) throw unavailable(`node ${p.node.rec.name} is not connected`);
    if (!placed) await this.c.place([p]);
    const sent = p.net?.ip ? this.c.net.engineBody(body, { network: p.net.network, ip: p.net.ip }) : body;
    try {
      return await this.c.command(p.node, 'create', { id: p.id, ...(p.name && { name: p.name }), body: sent, ...(start && { start }) });
    } catch (err) {
      if (!isCode(err, 'UNAVAILABLE')) {
        // created but not started: gone with its placement, as if never made
        if (start) await this.c.command(p.node, 'remove', { id: p.id, force: true, volumes: true }).catch(() => undefined);
        await this.c.unplace([p.id]).catch(() => undefined);
      }
      throw err;
    }
  }

  async inspect(id: string, o: { size: boolean }): Promise<ContainerInspect> {
    const { entry } = this.c.owner(id);
    const r = await this.c.command(entry.node, 'inspect', { id: entry.summary.Id, ...(o.size && { size: true }) });
    return { ...r, Node: Cluster.swarmNode(entry.node) };
  }

  /** A command on the owner; the container as it left it is in the indexes when this returns. */
  private async on<K extends 'start' | 'stop' | 'restart' | 'kill' | 'pause' | 'unpause' | 'rename' | 'update'>(ref: string, op: K, args: Omit<Commands[K]['args'], 'id'>): Promise<Commands[K]['value']> {
    const { entry } = this.c.owner(ref);
    return this.c.command(entry.node, op, { ...args, id: entry.summary.Id } as Commands[K]['args']);
  }

  async start(id: string): Promise<void> {
    await this.on(id, 'start', {});
  }
  async stop(id: string, o: { timeout?: number; signal?: string }): Promise<void> {
    await this.on(id, 'stop', { t: o.timeout, signal: o.signal });
  }
  async restart(id: string, o: { timeout?: number; signal?: string }): Promise<void> {
    await this.on(id, 'restart', { t: o.timeout, signal: o.signal });
  }
  async kill(id: string, signal?: string): Promise<void> {
    await this.on(id, 'kill', { signal });
  }
  async pause(id: string): Promise<void> {
    await this.on(id, 'pause', {});
  }
  async unpause(id: string): Promise<void> {
    await this.on(id, 'unpause', {});
  }

  async rename(id: string, name: string): Promise<void> {
    const to = name.replace(/^\//, '');
    this.c.state.reserveName(to);
    try {
      await this.on(id, 'rename', { name: to });
    } finally {
      this.c.state.releaseName(to);
    }
  }

  update(id: string, body: Record<string, unknown>): Promise<{ Warnings: string[] }> {
    return this.on(id, 'update', { body });
  }

  async remove(ref: string, o: { force: boolean; volumes: boolean; link: boolean }): Promise<void> {
    if (o.link) notYet('removing a legacy link');
    this.c.store.health.requireUp();
    const { entry } = this.c.owner(ref);
    const id = entry.summary.Id;
    await this.c.command(entry.node, 'remove', { id, force: o.force, volumes: o.volumes });
    if (this.c.state.placed.has(id)) await this.c.unplace([id]);
  }

  async wait(ref: string, condition: 'not-running' | 'next-exit' | 'removed', signal: AbortSignal): Promise<{ result: Promise<ContainerWaitResponse> }> {
    const { entry, client } = this.c.owner(ref);
    const res = await client.stream('POST', `/containers/${entry.summary.Id}/wait`, { query: { condition } });
    signal.addEventListener('abort', () => res.destroy(), { once: true });
    const result = (async () => {
      let text = '';
      for await (const chunk of res) text += (chunk as Buffer).toString('utf8');
      return JSON.parse(text) as ContainerWaitResponse;
    })();
    return { result };
  }

  async top(ref: string, psArgs: string): Promise<ContainerTopResponse> {
    const { entry, client } = this.c.owner(ref);
    return client.json('GET', `/containers/${entry.summary.Id}/top`, { query: { ps_args: psArgs || undefined } });
  }

  async resize(ref: string, h: number, w: number): Promise<void> {
    const { entry, client } = this.c.owner(ref);
    await client.request('POST', `/containers/${entry.summary.Id}/resize`, { query: { h, w } });
  }

  async changes(ref: string): Promise<FilesystemChange[]> {
    const { entry, client } = this.c.owner(ref);
    return client.json('GET', `/containers/${entry.summary.Id}/changes`);
  }

  private pass(ref: string, method: string, what: string, query: Record<string, string | number | boolean | undefined>, out: Output): Promise<void> {
    const { entry, client } = this.c.owner(ref);
    return passStream(client, method, `/containers/${entry.summary.Id}/${what}`, { query }, out);
  }

  export(id: string, out: Output): Promise<void> {
    return this.pass(id, 'GET', 'export', {}, out);
  }

  logs(id: string, o: LogsOptions, out: Output): Promise<void> {
    return this.pass(id, 'GET', 'logs', { stdout: o.stdout, stderr: o.stderr, follow: o.follow, timestamps: o.timestamps, tail: o.tail, since: o.since, until: o.until }, out);
  }

  attach(ref: string, o: AttachOptions, out: Output): Promise<void> {
    const { entry, client } = this.c.owner(ref);
    const query = { stdin: o.stdin, stdout: o.stdout, stderr: o.stderr, stream: o.stream, logs: o.logs, detachKeys: o.detachKeys };
    return passHijack(client, `/containers/${entry.summary.Id}/attach`, { query }, out);
  }

  stats(id: string, o: { stream: boolean; oneShot: boolean }, out: Output): Promise<void> {
    return this.pass(id, 'GET', 'stats', { stream: o.stream, 'one-shot': o.oneShot }, out);
  }

  async statPath(ref: string, p: string): Promise<PathStat> {
    const { entry, client } = this.c.owner(ref);
    const r = await client.request('HEAD', `/containers/${entry.summary.Id}/archive`, { query: { path: p } });
    return JSON.parse(Buffer.from(String(r.headers['x-docker-container-path-stat'] ?? ''), 'base64').toString('utf8')) as PathStat;
  }

  getArchive(id: string, p: string, out: Output): Promise<void> {
    return this.pass(id, 'GET', 'archive', { path: p }, out);
  }

  async putArchive(ref: string, p: string, tar: Readable, o: { noOverwriteDirNonDir: boolean; copyUIDGID: boolean }): Promise<void> {
    const { entry, client } = this.c.owner(ref);
    await client.request('PUT', `/containers/${entry.summary.Id}/archive`, { query: { path: p, ...o }, body: tar });
  }

  prune(): never {
    notYet('container prune');
  }

  commit(): never {
    notYet('commit');
  }
}
