import os from 'node:os';
import type { Router } from './http.js';
import { API_VERSION, ENGINE_VERSION, MIN_API_VERSION } from './http.js';
import type { Engine } from '../engine.js';
import type { EngineEvent } from '../events.js';
import { invalid, unavailable } from '../../lib/errors.js';
import { labelMatch, parseTime } from '../images/service.js';
import { LOG_DRIVERS } from '../containers/logconfig.js';
import { seccompActive } from '../containers/security.js';
import { containerSummary } from './views.js';

function eventMatches(ev: EngineEvent, filters: Map<string, string[]>): boolean {
  for (const [k, vals] of filters) {
    const a = ev.Actor.Attributes;
    const ok = (() => {
      switch (k) {
        case 'type':
          return vals.includes(ev.Type);
        case 'event':
        case 'action':
          return vals.some((v) => ev.Action === v || ev.Action.startsWith(`${v}:`));
        case 'container':
          return ev.Type === 'container' && vals.some((v) => ev.Actor.ID.startsWith(v) || a.name === v);
        case 'image':
          return vals.some((v) => a.image === v || ev.Actor.ID === v || a.name === v);
        case 'volume':
          return ev.Type === 'volume' && vals.includes(ev.Actor.ID);
        case 'network':
          return ev.Type === 'network' && vals.includes(ev.Actor.ID);
        case 'label':
          return vals.every((v) => labelMatch(a, v));
        case 'scope':
          return vals.includes('local');
        case 'daemon':
          return ev.Type === 'daemon';
        default:
          throw invalid(`invalid filter '${k}'`);
      }
    })();
    if (!ok) return false;
  }
  return true;
}

export function systemRoutes(r: Router, e: Engine): void {
  const ping = (ctx: Parameters<Parameters<Router['add']>[2]>[0]) =>
    ctx.send(200, 'OK', { 'Builder-Version': '1', 'Cache-Control': 'no-cache, no-store, must-revalidate', 'Pragma': 'no-cache' });
  r.add('GET', '/_ping', ping);
  // a single engine is not a swarm node: Docker's answer, which clients know, rather than a bare 404
  const notSwarm = () => {
    throw unavailable('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.');
  };
  for (const base of ['/swarm', '/nodes', '/services', '/tasks', '/secrets', '/configs']) {
    for (const method of ['GET', 'POST', 'DELETE']) for (const p of [base, `${base}/{rest*}`]) r.add(method, p, notSwarm);
  }
  r.add('HEAD', '/_ping', ping);

  r.add('GET', '/version', (ctx) => {
    ctx.send(200, {
      Platform: { Name: 'Sampan Engine' },
      Components: [
        { Name: 'Engine', Version: ENGINE_VERSION, Details: { ApiVersion: API_VERSION, MinAPIVersion: MIN_API_VERSION, GitCommit: '', GoVersion: `node ${process.version}`, Os: 'linux', Arch: 'amd64', KernelVersion: os.release(), Experimental: 'false', BuildTime: '' } },
        { Name: 'runc', Version: e.versions.runc, Details: { GitCommit: e.versions.runcCommit } },
        { Name: 'conmon', Version: e.versions.conmon, Details: {} },
        ...(e.initBinary ? [{ Name: 'docker-init', Version: e.versions.init.version, Details: { GitCommit: e.versions.init.commit } }] : []),
      ],
      Version: ENGINE_VERSION,
      ApiVersion: API_VERSION,
      MinAPIVersion: MIN_API_VERSION,
      GitCommit: '',
      GoVersion: `node ${process.version}`,
      Os: 'linux',
      Arch: 'amd64',
      KernelVersion: os.release(),
      BuildTime: '',
    });
  });

  r.add('GET', '/info', (ctx) => {
    const cs = e.containers.list();
    ctx.send(200, {
      ID: e.engineId,
      Containers: cs.length,
      ContainersRunning: cs.filter((c) => c.State.Status === 'running').length,
      ContainersPaused: cs.filter((c) => c.State.Status === 'paused').length,
      ContainersStopped: cs.filter((c) => c.State.Status !== 'running' && c.State.Status !== 'paused').length,
      Images: e.images.store.list().length,
      Driver: 'overlay2',
      DriverStatus: [['Backing Filesystem', 'overlayfs layers'], ['Supports d_type', 'true']],
      // the network drivers by Docker's names (the none network's is null)
      Plugins: { Volume: ['local'], Network: ['bridge', 'host', 'null'], Authorization: null, Log: LOG_DRIVERS },
      MemoryLimit: true,
      SwapLimit: true,
      CpuCfsPeriod: true,
      CpuCfsQuota: true,
      CPUShares: true,
      CPUSet: true,
      PidsLimit: true,
      IPv4Forwarding: true,
      Debug: false,
      NFd: 0,
      OomKillDisable: false,
      NGoroutines: 0,
      SystemTime: new Date().toISOString(),
      LoggingDriver: LOG_DRIVERS[0],
      CgroupDriver: 'cgroupfs',
      CgroupVersion: e.cgroupVersion,
      NEventsListener: 0,
      KernelVersion: os.release(),
      OperatingSystem: e.osName,
      OSVersion: '',
      OSType: 'linux',
      Architecture: 'x86_64',
      IndexServerAddress: 'https://index.docker.io/v1/',
      RegistryConfig: { InsecureRegistryCIDRs: ['127.0.0.0/8'], IndexConfigs: {}, Mirrors: [] },
      NCPU: os.cpus().length,
      MemTotal: os.totalmem(),
      DockerRootDir: e.config.root,
      HttpProxy: '',
      HttpsProxy: '',
      NoProxy: '',
      Name: os.hostname(),
      Labels: [],
      ExperimentalBuild: false,
      ServerVersion: ENGINE_VERSION,
      Runtimes: { runc: { path: e.config.runc } },
      DefaultRuntime: 'runc',
      LiveRestoreEnabled: true,
      Isolation: '',
      InitBinary: e.initBinary ?? '',
      // Docker shows the commits; Debian's runc has one (its package version), Debian's tini only its version
      RuncCommit: { ID: e.versions.runcCommit || e.versions.runc, Expected: e.versions.runcCommit || e.versions.runc },
      InitCommit: { ID: e.versions.init.commit || e.versions.init.version, Expected: e.versions.init.commit || e.versions.init.version },
      ContainerdCommit: { ID: '', Expected: '' },
      Swarm: { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null },
      SecurityOptions: seccompActive() ? ['name=seccomp,profile=builtin'] : [],
      Warnings: [],
    });
  });

  r.add('GET', '/events', async (ctx) => {
    const filters = ctx.filters();
    const since = ctx.query.get('since');
    const until = ctx.query.get('until');
    const untilMs = until ? parseTime(until) : 0;
    const res = ctx.stream('application/json');
    const send = (ev: EngineEvent) => {
      if (untilMs && ev.time * 1000 > untilMs) return;
      if (eventMatches(ev, filters)) res.write(JSON.stringify(ev) + '\n');
    };
    if (since) for (const ev of e.events.since(parseTime(since) * 1e6)) send(ev);
    const unsub = e.events.subscribe(send);
    const wait = untilMs ? new Promise<void>((r2) => setTimeout(r2, Math.max(0, untilMs - Date.now()))) : new Promise<void>(() => undefined);
    await Promise.race([ctx.closed(), wait]);
    unsub();
    res.end();
  });

  r.add('GET', '/system/df', async (ctx) => {
    const images = e.images.store.list();
    // a layer shared by images is stored once: count it once, and as shared in each of them
    const layerSize = new Map<string, number>();
    const layerUsers = new Map<string, number>();
    for (const i of images) {
      for (const l of i.layers) {
        layerSize.set(l.chainId, l.size);
        layerUsers.set(l.chainId, (layerUsers.get(l.chainId) ?? 0) + 1);
      }
    }
    const shared = (i: (typeof images)[number]) => i.layers.filter((l) => layerUsers.get(l.chainId)! > 1).reduce((a, l) => a + l.size, 0);
    ctx.send(200, {
      LayersSize: [...layerSize.values()].reduce((a, n) => a + n, 0),
      Images: images.map((i) => ({ Id: i.id, ParentId: '', RepoTags: i.repoTags, RepoDigests: i.repoDigests, Created: Math.floor(Date.parse(i.created) / 1000), Size: i.size, SharedSize: shared(i), Labels: {}, Containers: e.containers.usesImage(i.id).length })),
      Containers: await Promise.all(e.containers.list().map(async (c) => ({ ...containerSummary(c, c.Config.Image), ...(await e.containers.sizes(c)) }))),
      Volumes: (await e.volumes.list()).map((v) => ({ ...v, UsageData: { Size: -1, RefCount: e.volumes.inUse(v.Name).length } })),
      BuildCache: [],
    });
  });

  // volumes
  r.add('GET', '/volumes', async (ctx) => {
    const f = ctx.filters();
    let vols = await e.volumes.list();
    for (const [k, vals] of f) {
      if (k === 'name') vols = vols.filter((v) => vals.some((x) => v.Name.includes(x)));
      else if (k === 'label') vols = vols.filter((v) => vals.every((x) => labelMatch(v.Labels, x)));
      else if (k === 'dangling') vols = vols.filter((v) => (e.volumes.inUse(v.Name).length === 0) === vals.some((x) => x === 'true' || x === '1'));
      else if (k === 'driver') vols = vols.filter((v) => vals.includes(v.Driver));
      else throw invalid(`invalid filter '${k}'`);
    }
    ctx.send(200, { Volumes: vols, Warnings: [] });
  });
  r.add('POST', '/volumes/create', async (ctx) => {
    const b = (await ctx.json<{ Name?: string; Driver?: string; DriverOpts?: Record<string, string>; Labels?: Record<string, string> }>()) ?? {};
    if (typeof b !== 'object' || Array.isArray(b)) throw invalid('invalid volume create body');
    ctx.send(201, await e.volumes.create(b.Name || undefined, { labels: b.Labels ?? {}, driverOpts: b.DriverOpts ?? {}, driver: b.Driver || undefined }));
  });
  r.add('POST', '/volumes/prune', async (ctx) => {
    const f = ctx.filters();
    const all = (f.get('all') ?? []).some((v) => v === 'true' || v === '1');
    const labels = f.get('label') ?? [];
    ctx.send(200, await e.volumes.prune(all, (l) => labels.every((x) => labelMatch(l, x))));
  });
  r.add('GET', '/volumes/{name}', async (ctx) => ctx.send(200, await e.volumes.get(ctx.param('name'))));
  r.add('DELETE', '/volumes/{name}', async (ctx) => {
    await e.volumes.remove(ctx.param('name'), ctx.bool('force'));
    ctx.send(204);
  });
}
