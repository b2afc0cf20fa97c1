import os from 'node:os';
import type { Filters, Output, SystemBackend } from '../../docker-api/index.js';
import { API_VERSION, ENGINE_VERSION, MIN_API_VERSION } from '../../docker-api/index.js';
import type { SystemDf, SystemInfo, SystemVersion } from '../../lib/docker-types.js';
import type { Engine } from '../engine.js';
import type { EngineEvent } from '../events.js';
import { invalid } from '../../lib/errors.js';
import { labelMatch, parseTime } from '../images/service.js';
import { LOG_DRIVERS } from '../containers/logconfig.js';
import { seccompActive } from '../containers/security.js';
import { containerSummary } from './views.js';

const EVENT_FILTERS = new Set(['type', 'event', 'action', 'container', 'image', 'volume', 'network', 'label', 'scope', 'daemon']);

function eventMatches(ev: EngineEvent, filters: Filters): boolean {
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

/** The Docker API's system backend: version, info, df and events of this host. */
export class EngineSystem implements SystemBackend {
  constructor(private readonly e: Engine) {}

  async version(): Promise<SystemVersion> {
    const e = this.e;
    return {
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
    };
  }

  async info(): Promise<SystemInfo> {
    const e = this.e;
    const cs = e.containers.list();
    return {
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
    } as SystemInfo;
  }

  async df(): Promise<SystemDf> {
    const e = this.e;
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
    return {
      LayersSize: [...layerSize.values()].reduce((a, n) => a + n, 0),
      Images: images.map((i) => ({ Id: i.id, ParentId: '', RepoTags: i.repoTags, RepoDigests: i.repoDigests, Created: Math.floor(Date.parse(i.created) / 1000), Size: i.size, SharedSize: shared(i), Labels: {}, Containers: e.containers.usesImage(i.id).length })),
      Containers: await Promise.all(e.containers.list().map(async (c) => ({ ...containerSummary(c, c.Config.Image), ...(await e.containers.sizes(c)) }))),
      Volumes: (await e.volumes.list()).map((v) => ({ ...v, UsageData: { Size: -1, RefCount: e.volumes.inUse(v.Name).length } })),
      BuildCache: [],
    };
  }

  /** Past events since `since`, then live ones until `until` or the client leaves. */
  async events(o: { since?: string; until?: string; filters: Filters }, out: Output): Promise<void> {
    const untilMs = o.until ? parseTime(o.until) : 0;
    const sinceNs = o.since ? parseTime(o.since) * 1e6 : undefined;
    for (const [k] of o.filters) if (!EVENT_FILTERS.has(k)) throw invalid(`invalid filter '${k}'`);
    const res = out.open('application/json');
    const send = (ev: EngineEvent) => {
      if (untilMs && ev.time * 1000 > untilMs) return;
      if (eventMatches(ev, o.filters)) res.write(JSON.stringify(ev) + '\n');
    };
    if (sinceNs !== undefined) for (const ev of this.e.events.since(sinceNs)) send(ev);
    const unsub = this.e.events.subscribe(send);
    const signal = out.signal;
    const gone = new Promise<void>((r) => (signal.aborted ? r() : signal.addEventListener('abort', () => r(), { once: true })));
    const wait = untilMs ? new Promise<void>((r) => setTimeout(r, Math.max(0, untilMs - Date.now()))) : new Promise<void>(() => undefined);
    await Promise.race([gone, wait]);
    unsub();
    res.end();
  }
}
