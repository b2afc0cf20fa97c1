/**
 * The Docker API's backends over the cluster (Swarm classic's behaviour): exec on the container's owner, images
 * merged and pulled on every (or every constrained) node, networks and volumes listed with their node, info summed.
 */
import os from 'node:os';
import type { Backends, ExecBackend, Filters, ImageBackend, NetworkBackend, Output, PullOptions, RegistryAuth, SystemBackend, VolumeBackend } from '../../docker-api/index.js';
import { API_VERSION, ENGINE_VERSION, MIN_API_VERSION } from '../../docker-api/index.js';
import type { ExecCreateRequest, ExecInspect, ExecStartRequest, IdResponse, ImageInspect, ImageSummary, NetworkCreateResponse, NetworkResource, SystemInfo, SystemVersion, Volume, VolumeListResponse } from '../../lib/docker-types.js';
import { jsonMessages } from '../../lib/engine-client.js';
import { conflict, errorMessage, isCode, notFound } from '../../lib/errors.js';
import { parseRule } from '../request.js';
import { meets } from '../scheduler.js';
import type { NodeEntry } from '../state.js';
import { clusterNetworkRequest, networkMatches, networkView } from '../network/views.js';
import type { ClusterNetworking } from '../network/networks.js';
import { Cluster, notYet, passHijack } from './cluster.js';
import { ClusterContainers } from './containers.js';
import type { Role } from '../election.js';

/** How many engines one fanned-out request (a pull) talks to at once. */
const FANOUT = 8;

/** `fn` over items, at most `cap` at a time; results in order. */
export async function mapLimit<T, R>(items: T[], cap: number, fn: (t: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(cap, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  }));
  return out;
}

/**
 * The first up node's answer for a named object (image, network, volume): `NODE/NAME` asks that node only (where
 * names have no slashes of their own: not images), a bare name each node in turn; not found anywhere is Docker's 404.
 */
async function firstFound<T>(c: Cluster, ref: string, what: string, fn: (n: NodeEntry, name: string) => Promise<T>, pinnable = true): Promise<T> {
  const slash = pinnable ? ref.indexOf('/') : -1;
  const pinned = slash > 0 ? c.state.node(ref.slice(0, slash)) : undefined;
  const tries: Array<[NodeEntry, string]> = pinned?.rec.state === 'up' ? [[pinned, ref.slice(slash + 1)]] : c.upNodes().map((n) => [n, ref]);
  for (const [n, name] of tries) {
    try {
      return await fn(n, name);
    } catch (err) {
      if (!isCode(err, 'NOT_FOUND')) throw err;
    }
  }
  throw notFound(`No such ${what}: ${ref}`);
}

const filterQuery = (f: Filters) => (f.size ? JSON.stringify(Object.fromEntries(f)) : undefined);

class ClusterExec implements ExecBackend {
  /** Exec ids are short-lived: their node in memory is enough. */
  private readonly owners = new Map<string, NodeEntry>();
  constructor(private readonly c: Cluster) {}

  private owner(id: string): NodeEntry {
    const n = this.owners.get(id);
    if (!n) throw notFound(`No such exec instance: ${id}`);
    return n;
  }

  async create(container: string, body: Partial<ExecCreateRequest>): Promise<IdResponse> {
    const { entry, client } = this.c.owner(container);
    const r = await client.json<IdResponse>('POST', `/containers/${entry.summary.Id}/exec`, { body });
    this.owners.set(r.Id, entry.node);
    return r;
  }

  async start(id: string, o: ExecStartRequest, out: Output): Promise<void> {
    const client = this.c.client(this.owner(id));
    if (o.Detach) {
      await client.request('POST', `/exec/${id}/start`, { body: o });
      return;
    }
    await passHijack(client, `/exec/${id}/start`, { body: o }, out);
  }

  inspect(id: string): Promise<ExecInspect> {
    return this.c.client(this.owner(id)).json('GET', `/exec/${id}/json`);
  }

  async resize(id: string, h: number, w: number): Promise<void> {
    await this.c.client(this.owner(id)).request('POST', `/exec/${id}/resize`, { query: { h, w } });
  }
}

class ClusterImages implements ImageBackend {
  constructor(private readonly c: Cluster) {}

  /** Every up node's images, one entry per image id (its tags merged). */
  async list(o: { all: boolean; filters: Filters }): Promise<ImageSummary[]> {
    const lists = await mapLimit(this.c.upNodes(), FANOUT, (n) => this.c.client(n).json<ImageSummary[]>('GET', '/images/json', { query: { all: o.all, filters: filterQuery(o.filters) } }).catch(() => []));
    const byId = new Map<string, ImageSummary>();
    for (const img of lists.flat()) {
      const seen = byId.get(img.Id);
      if (!seen) byId.set(img.Id, { ...img });
      else seen.RepoTags = [...new Set([...(seen.RepoTags ?? []), ...(img.RepoTags ?? [])])];
    }
    return [...byId.values()];
  }

  inspect(ref: string): Promise<ImageInspect> {
    return firstFound(this.c, ref, 'image', (n) => this.c.client(n).json<ImageInspect>('GET', `/images/${ref}/json`), false);
  }

  /**
   * Pulled on every up node, or those that meet `constraint=` query parameters (Swarm's constraint expressions),
   * FANOUT at a time; each node's progress lines tagged with its name.
   */
  async pull(o: PullOptions, out: Output): Promise<void> {
    const rules = (o.constraints ?? []).map((c) => parseRule('constraint', c));
    const nodes = this.c.upNodes().filter((n) => rules.every((r) => meets({ name: n.rec.name, labels: n.rec.labels }, r)));
    if (!nodes.length) throw conflict(`no node that is up meets ${rules.map((r) => r.text).join(', ') || 'the pull'}`);
    const w = out.open('application/json');
    const auth = o.auth ? { 'X-Registry-Auth': Buffer.from(JSON.stringify(o.auth)).toString('base64url') } : undefined;
    let failed = 0;
    await mapLimit(nodes, FANOUT, async (n) => {
      try {
        const res = await this.c.client(n).stream('POST', '/images/create', { query: { fromImage: o.image, tag: o.tag || undefined, platform: o.platform }, headers: auth });
        out.signal.addEventListener('abort', () => res.destroy(), { once: true });
        for await (const m of jsonMessages(res)) {
          if (m.error) failed++;
          w.write(JSON.stringify({ ...m, id: m.id ? `${n.rec.name}: ${String(m.id)}` : n.rec.name }) + '\n');
        }
      } catch (err) {
        failed++;
        w.write(JSON.stringify({ id: n.rec.name, status: `pull failed: ${errorMessage(err)}` }) + '\n');
      }
    });
    if (failed) w.write(JSON.stringify({ errorDetail: { message: `the pull failed on ${failed} of ${nodes.length} nodes` }, error: `the pull failed on ${failed} of ${nodes.length} nodes` }) + '\n');
    w.end();
  }

  history = () => notYet('image history');
  tag = () => notYet('image tag');
  remove = () => notYet('image remove');
  prune = () => notYet('image prune');
  import = () => notYet('image import');
  push = () => notYet('image push');
  load = () => notYet('image load');
  save = () => notYet('image save');
  /**
   * The registry's answer through an engine (the first up node that answers): the CLI pins a service's image to the
   * digest it gets here before `service create` and `update`. Engines reach the registries the cluster pulls from.
   */
  async distribution(name: string, auth: RegistryAuth | undefined): Promise<unknown> {
    const headers = auth ? { 'X-Registry-Auth': Buffer.from(JSON.stringify(auth)).toString('base64url') } : undefined;
    let last: unknown = notFound(`No such image: ${name}`);
    for (const n of this.c.upNodes()) {
      try {
        return await this.c.client(n).json('GET', `/distribution/${name}/json`, { headers });
      } catch (err) {
        last = err;
        if (!isCode(err, 'UNAVAILABLE')) break;
      }
    }
    throw last;
  }
  login = () => notYet('login');
}

/**
 * The cluster networks (Scope swarm: made, listed and removed by the manager), then each up node's own networks,
 * named NODE/NAME as Swarm classic listed them (an engine's copies of the cluster networks are not listed twice).
 */
class ClusterNetworks implements NetworkBackend {
  constructor(private readonly c: Cluster) {}
  private get net(): ClusterNetworking {
    return this.c.net;
  }
  async list(filters: Filters): Promise<NetworkResource[]> {
    const mine = this.net.list().map((n) => networkView(n, [])).filter((v) => networkMatches(v, filters));
    const lists = await mapLimit(this.c.upNodes(), FANOUT, async (n) => (await this.c.client(n).json<NetworkResource[]>('GET', '/networks', { query: { filters: filterQuery(filters) } }))
      .filter((x) => x.Scope !== 'swarm').map((x) => ({ ...x, Name: `${n.rec.name}/${x.Name}` })));
    return [...mine, ...lists.flat()];
  }
  inspect(ref: string): Promise<NetworkResource> {
    const mine = this.net.find(ref);
    if (mine) return Promise.resolve(networkView(mine, this.net.containersOn(mine).map(([id, ip]) => [id, this.c.state.entry(id)?.summary.Names[0]?.replace(/^\//, '') ?? '', ip])));
    return firstFound(this.c, ref, 'network', async (n, name) => {
      const r = await this.c.client(n).json<NetworkResource>('GET', `/networks/${encodeURIComponent(name)}`);
      return { ...r, Name: `${n.rec.name}/${r.Name}` };
    });
  }
  async create(body: unknown): Promise<NetworkCreateResponse> {
    const n = await this.net.create(clusterNetworkRequest(body));
    return { Id: n.spec.id, Warning: '' };
  }
  async remove(ref: string): Promise<void> {
    if (!this.net.find(ref)) notYet('removing an engine\'s own network');
    await this.net.remove(ref);
  }
  connect = () => notYet('network connect');
  disconnect = () => notYet('network disconnect');
  prune = () => notYet('network prune');
}

class ClusterVolumes implements VolumeBackend {
  constructor(private readonly c: Cluster) {}
  async list(filters: Filters): Promise<VolumeListResponse> {
    const lists = await mapLimit(this.c.upNodes(), FANOUT, async (n) => ((await this.c.client(n).json<VolumeListResponse>('GET', '/volumes', { query: { filters: filterQuery(filters) } })).Volumes ?? []).map((v): Volume => ({ ...v, Name: `${n.rec.name}/${v.Name}` })));
    return { Volumes: lists.flat(), Warnings: [] };
  }
  inspect(ref: string): Promise<Volume> {
    return firstFound(this.c, ref, 'volume', async (n, name) => ({ ...(await this.c.client(n).json<Volume>('GET', `/volumes/${encodeURIComponent(name)}`)), Name: `${n.rec.name}/${name}` }));
  }
  create = () => notYet('volume create');
  remove = () => notYet('volume remove');
  prune = () => notYet('volume prune');
}

class ClusterSystem implements SystemBackend {
  constructor(private readonly c: Cluster, private readonly name: string, private readonly role: () => Role) {}

  /** Sums over the nodes (NCPU and MemTotal over the healthy ones), and Swarm classic's status lines. */
  async info(): Promise<SystemInfo> {
    const nodes = [...this.c.state.nodes.values()].sort((a, b) => a.rec.name.localeCompare(b.rec.name));
    const up = nodes.filter((n) => n.rec.state === 'up');
    let running = 0;
    let paused = 0;
    for (const e of this.c.state.all()) {
      if (e.summary.State === 'running') running++;
      else if (e.summary.State === 'paused') paused++;
    }
    const total = this.c.state.containerCount;
    const stale = this.c.store.health.stale;
    const status: Array<[string, string]> = [['Role', this.role() === 'leader' ? 'primary' : 'replica'], ['Strategy', this.c.external ? `external ${this.c.external.url}` : this.c.strategy], ['Filters', 'health, constraint, affinity, port, reservations'], ['State store', stale ?? 'etcd reachable'], ['Nodes', String(nodes.length)]];
    const warnings = up.length < nodes.length ? [`${nodes.length - up.length} of ${nodes.length} nodes are down`] : [];
    if (stale) warnings.push(`WARNING: the cluster state store is unreachable (${stale}): this answer comes from the manager's memory and may be stale; changes are refused`);
    for (const n of nodes) {
      status.push([` ${n.rec.name}`, n.rec.api]);
      status.push(['  └ Status', n.rec.state === 'up' ? 'Healthy' : 'Unhealthy']);
      status.push(['  └ Containers', String(n.containers.size)]);
      status.push(['  └ Reserved CPUs', `0 / ${n.rec.capacity.ncpu}`]);
      status.push(['  └ Labels', Object.entries(n.rec.labels).map(([k, v]) => `${k}=${v}`).join(', ')]);
    }
    return {
      ID: `cluster:${this.name}`, Containers: total, ContainersRunning: running, ContainersPaused: paused, ContainersStopped: total - running - paused,
      Images: up.reduce((a, n) => a + n.images, 0), Driver: '', DriverStatus: [], SystemStatus: status,
      Plugins: { Volume: ['local'], Network: ['bridge', 'host', 'null'], Authorization: null, Log: ['json-file'] },
      MemoryLimit: true, SwapLimit: true, CpuCfsPeriod: true, CpuCfsQuota: true, CPUShares: true, CPUSet: true, PidsLimit: true, IPv4Forwarding: true,
      Debug: false, NFd: 0, NGoroutines: 0, SystemTime: new Date().toISOString(), LoggingDriver: 'json-file', CgroupDriver: 'cgroupfs', CgroupVersion: '2',
      NEventsListener: 0, KernelVersion: os.release(), OperatingSystem: 'sampan cluster', OSVersion: '', OSType: 'linux', Architecture: 'x86_64',
      NCPU: up.reduce((a, n) => a + n.rec.capacity.ncpu, 0), MemTotal: up.reduce((a, n) => a + n.rec.capacity.memTotal, 0),
      IndexServerAddress: 'https://index.docker.io/v1/', RegistryConfig: {}, DockerRootDir: '', Name: this.name, Labels: [], ExperimentalBuild: false,
      ServerVersion: `sampan-cluster/${ENGINE_VERSION}`, Runtimes: {}, DefaultRuntime: 'runc', Swarm: { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null },
      LiveRestoreEnabled: false, Isolation: '', InitBinary: '', ContainerdCommit: { ID: '', Expected: '' }, RuncCommit: { ID: '', Expected: '' }, InitCommit: { ID: '', Expected: '' },
      SecurityOptions: [], Warnings: warnings.length ? warnings : null,
    };
  }

  async version(): Promise<SystemVersion> {
    return {
      Platform: { Name: 'Sampan cluster' }, Components: [{ Name: 'Sampan cluster manager', Version: ENGINE_VERSION, Details: {} }],
      Version: ENGINE_VERSION, ApiVersion: API_VERSION, MinAPIVersion: MIN_API_VERSION, GitCommit: '', GoVersion: `node ${process.version}`,
      Os: 'linux', Arch: 'amd64', KernelVersion: os.release(), BuildTime: '',
    };
  }

  df = () => notYet('system df');
  events = () => notYet('events');
  pingHeaders(): Record<string, string> {
    return { 'X-Sampan-Role': this.role() };
  }
}

export function clusterBackends(c: Cluster, name: string, role: () => Role = () => 'leader'): Backends & { containers: ClusterContainers } {
  return {
    containers: new ClusterContainers(c),
    exec: new ClusterExec(c),
    images: new ClusterImages(c),
    build: { build: () => notYet('build'), prune: () => notYet('build prune') },
    networks: new ClusterNetworks(c),
    volumes: new ClusterVolumes(c),
    system: new ClusterSystem(c, name, role),
  };
}
export { Cluster, ClusterContainers };
