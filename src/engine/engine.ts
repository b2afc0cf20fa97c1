import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import type { Logger } from '../lib/log.js';
import { ensureDir, readJsonOr, atomicWriteJson } from '../lib/fsutil.js';
import type { EngineConfig } from './config.js';
import { ContentStore } from './images/content.js';
import { LayerStore } from './snapshots/layers.js';
import { OverlaySnapshots } from './snapshots/overlay.js';
import { ImageStore } from './images/store.js';
import { ImageService } from './images/service.js';
import { CommitService } from './images/commit.js';
import { ConmonRuncRuntime } from './runtime/oci.js';
import { EventBus } from './events.js';
import { VolumeService } from './volumes/service.js';
import { ContainerService } from './containers/service.js';
import { NetworkService } from './network/service.js';
import { ExecService } from './containers/exec.js';
import { HealthMonitor } from './containers/health.js';
import { PreStopHooks } from './containers/prestop.js';
import { Registries } from '../lib/distribution/client.js';
import { ExtractPool } from './snapshots/extract-pool.js';
import { Lxcfs } from './lxcfs.js';
import { loadDefaultSeccomp } from './containers/security.js';
import { hostBinary, type RichInits } from './containers/rich.js';
import { which } from '../lib/which.js';
import { DiskQuotas } from './quota/quota.js';

const run = promisify(execFile);

/**
 * `X version V` and `commit: C` lines (runc, conmon), or tini's `tini version V - git.C`: as dockerd reads them
 * for docker info's runc and init versions.
 */
export function parseVersion(out: string): { version: string; commit: string } {
  const first = out.split('\n').find((l) => l.includes(' version ')) ?? '';
  const [v, git] = first.split(' - ');
  return {
    version: v!.replace(/^.* version /, '').trim(),
    commit: /^commit:\s*(\S+)/m.exec(out)?.[1] ?? /^git\.(\S+)/.exec(git?.trim() ?? '')?.[1] ?? '',
  };
}

/** The engine's services, wired together: the composition root. */
export class Engine {
  readonly events = new EventBus();
  readonly content: ContentStore;
  readonly layers: LayerStore;
  readonly images: ImageService;
  /** docker commit, diff and export (and the builder's commits). */
  readonly commits: CommitService;
  readonly volumes: VolumeService;
  readonly containers: ContainerService;
  readonly execs: ExecService;
  readonly networks: NetworkService;
  readonly registries: Registries;
  readonly lxcfs: Lxcfs;
  private readonly extractPool = new ExtractPool();
  engineId = '';
  initBinary?: string;
  cgroupVersion = '1';
  osName = 'Linux';
  versions = { runc: '', runcCommit: '', conmon: '', init: { version: '', commit: '' } };

  private constructor(
    readonly config: EngineConfig,
    readonly log: Logger,
    runcPath: string,
    conmonPath: string,
    initBinary: string | undefined,
    richInits: RichInits,
  ) {
    const root = config.root;
    this.content = new ContentStore(path.join(root, 'content'));
    this.layers = new LayerStore(path.join(root, 'layers'), this.extractPool.extract);
    const store = new ImageStore(path.join(root, 'images'), this.content, this.layers);
    const quota = new DiskQuotas(root);
    this.volumes = new VolumeService(path.join(root, 'volumes'), this.events, quota);
    this.initBinary = initBinary;
    this.lxcfs = new Lxcfs(config.lxcfs, log, config.lxcfsDir);
    // after an lxcfs restart, running containers get its files again
    this.lxcfs.running = () => this.containers.list().filter((c) => c.State.Status === 'running' || c.State.Status === 'paused').map((c) => ({ name: c.Name, pid: c.State.Pid }));
    this.networks = new NetworkService({
      root,
      bridgeName: config.bridgeName,
      bridgeSubnet: config.bridgeSubnet,
      defaultAddressPool: config.defaultAddressPool,
      cniPluginDirs: config.cniPluginDirs,
      log,
      events: this.events,
      containers: () => this.containers.list(),
    });
    this.containers = new ContainerService({
      root,
      execRoot: config.execRoot,
      images: store,
      snapshots: new OverlaySnapshots(this.layers, path.join(root, 'layers', 'empty')),
      runtime: new ConmonRuncRuntime(runcPath, path.join(config.execRoot, 'runc'), conmonPath),
      events: this.events,
      volumes: this.volumes,
      network: this.networks,
      log,
      initBinary,
      richInits,
      cgroupParent: config.cgroupParent,
      lxcfs: this.lxcfs,
      quota,
    });
    this.images = new ImageService(store, this.events, (id) =>
      this.containers.usesImage(id).map((c) => ({ id: c.Id, running: c.State.Status === 'running' || c.State.Status === 'paused' })),
    );
    this.execs = new ExecService(this.containers);
    this.commits = new CommitService({ containers: this.containers, store, diffDir: (c) => this.layers.diffDir(c), events: this.events });
    this.containers.health = new HealthMonitor(this.containers, this.execs);
    this.containers.preStop = new PreStopHooks(this.execs, log);
    this.registries = new Registries({ mirrors: config.registryMirrors, insecure: config.insecureRegistries }, log);
  }

  static async open(config: EngineConfig, log: Logger): Promise<Engine> {
    const runcPath = await which(config.runc);
    const conmonPath = await which(config.conmon);
    if (!runcPath) throw new Error(`OCI runtime "${config.runc}" not found on PATH (apt-get install runc)`);
    if (!conmonPath) throw new Error(`conmon not found on PATH (apt-get install conmon)`);
    const init = (await which('tini-static')) ?? (await which('tini'));
    // rich containers: Debian's dumb-init is dynamically linked, hostBinary finds what it needs to run in any image
    const dumbInit = await which('dumb-init');
    const richInits: RichInits = { 'dumb-init': dumbInit ? await hostBinary(dumbInit) : undefined, tini: init ? await hostBinary(init) : undefined };
    await ensureDir(config.root, 0o711);
    await ensureDir(config.execRoot, 0o711);
    const e = new Engine(config, log, runcPath, conmonPath, init, richInits);
    await e.content.init();
    await e.layers.init();
    await e.images.store.init();
    await e.volumes.init();
    await e.lxcfs.init();
    await loadDefaultSeccomp(log);
    await e.networks.init();
    await e.containers.init();
    await e.networks.resumeDns();
    const idFile = path.join(config.root, 'engine-id.json');
    const id = await readJsonOr<{ id?: string }>(idFile, {});
    e.engineId = id.id ?? randomUUID();
    if (!id.id) await atomicWriteJson(idFile, { id: e.engineId });
    e.cgroupVersion = (await fs.stat('/sys/fs/cgroup/cgroup.controllers').then(() => true, () => false)) ? '2' : '1';
    const osr = await fs.readFile('/etc/os-release', 'utf8').catch(() => '');
    e.osName = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(osr)?.[1] ?? 'Linux';
    const versionOf = async (bin: string) => parseVersion((await run(bin, ['--version']).catch(() => ({ stdout: '' }))).stdout);
    const runcV = await versionOf(runcPath);
    e.versions = { runc: runcV.version, runcCommit: runcV.commit, conmon: (await versionOf(conmonPath)).version, init: init ? await versionOf(init) : { version: '', commit: '' } };
    return e;
  }

  close(): void {
    this.containers.close();
    this.networks.close();
    this.lxcfs.close();
    this.registries.close();
    this.extractPool.close();
  }
}
