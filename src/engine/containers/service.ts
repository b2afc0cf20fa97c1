import { promises as fs, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { EventEmitter } from 'node:events';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { atomicWriteJson, ensureDir, exists, mountedAt, readJson, removeTree, treeSize } from '../../lib/fsutil.js';
import { conflict, invalid, notFound, notModified, SampanError, errorMessage } from '../../lib/errors.js';
import { NAME_RE, newId, randomName } from '../../lib/ids.js';
import { KeyedLock } from '../../lib/keyedlock.js';
import type { Logger } from '../../lib/log.js';
import type { Digest } from '../../lib/digest.js';
import type { ImageStore } from '../images/store.js';
import type { Snapshotter } from '../snapshots/snapshotter.js';
import type { Runtime } from '../runtime/runtime.js';
import type { EventBus } from '../events.js';
import type { VolumeService } from '../volumes/service.js';
import type { NetworkProvider } from '../network/provider.js';
import { quotaSize, type DiskQuotas } from '../quota/quota.js';
import { ZERO_TIME, isLive, type ContainerRecord, type MountPoint } from './model.js';
import { mergeConfig, normalizeHostConfig, parseBind } from './create.js';
import { buildSpec, parseSignal } from './spec.js';
import { resolveUser } from './user.js';
import { applyRich, type RichInits } from './rich.js';
import { mergeEnv } from './parse.js';
import { CreateBodySchema, parseBody } from './validate.js';
import { OomWatch } from './oom.js';
import { checkLinks, linkByAlias, linkEnv, linkHosts, resolveLinks } from './links.js';
import { logConfigWarnings, logSizeMax, readable } from './logconfig.js';
import { checkResources, cgroupsPathOf, mergeUpdate, updateResources, validateResources } from './resources.js';

const run = promisify(execFile);
const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export type WaitCondition = 'next-exit' | 'not-running' | 'removed';

export interface ContainerDeps {
  root: string;
  execRoot: string;
  images: ImageStore;
  snapshots: Snapshotter;
  runtime: Runtime;
  events: EventBus;
  volumes: VolumeService;
  /** Bridge networking (CNI); without it a container gets a fresh namespace with loopback only. */
  network?: NetworkProvider;
  log: Logger;
  initBinary?: string;
  /** The inits a rich container can have as PID 1 (dumb-init, tini). */
  richInits?: RichInits;
  cgroupParent: string;
  /** The LXCFS views bound into containers (when enabled and available). */
  lxcfs?: { binds(): Promise<Array<{ source: string; destination: string }>> };
  /** Size limits for writable layers (`--storage-opt size=`). */
  quota: DiskQuotas;
}

/** Called with the attach socket's path once conmon made it, before the process runs. */
export type AttachHook = (socketPath: string) => Promise<void>;

/** What the container service tells the health monitor (health.ts), which needs the service in turn. */
export interface HealthWatch {
  started(rec: ContainerRecord): void;
  update(rec: ContainerRecord): void;
  resume(rec: ContainerRecord): void;
  stop(rec: ContainerRecord): void;
  close(): void;
}

/** Container lifecycle with Docker's semantics; truth lives on disk and in the kernel. */
export class ContainerService {
  private readonly records = new Map<string, ContainerRecord>();
  private readonly names = new Map<string, string>();
  private readonly lock = new KeyedLock();
  private readonly exits = new EventEmitter();
  private readonly pendingAttach = new Map<string, AttachHook[]>();
  private readonly restartTimers = new Map<string, NodeJS.Timeout>();
  private readonly startedAtMs = new Map<string, number>();
  private readonly restartDelay = new Map<string, number>();
  /** Exits being recorded right now (their cleanup must finish before a stop returns or a start begins). */
  private readonly exiting = new Map<string, Promise<void>>();
  /** How many requests (docker cp) are using each container's mounted root right now. */
  private readonly rootfsUsers = new Map<string, number>();
  private watcher?: FSWatcher;
  private poller?: NodeJS.Timeout;
  private readonly oom = new OomWatch(
    () => this.list().filter((r) => r.State.Status === 'running' && r.HostConfig.Memory > 0).map((r) => ({ id: r.Id, cgroupsPath: this.cgroupsPath(r) })),
    (id) => {
      const rec = this.records.get(id);
      if (rec) this.d.events.emit('container', 'oom', id, this.attrs(rec));
    },
  );
  readonly containersDir: string;
  readonly exitsDir: string;
  /** Health checks (set by the engine: they run through its exec service). */
  health?: HealthWatch;

  constructor(readonly d: ContainerDeps) {
    this.containersDir = path.join(d.root, 'containers');
    this.exitsDir = path.join(d.execRoot, 'exits');
    this.exits.setMaxListeners(0);
  }

  dir(id: string): string {
    return path.join(this.containersDir, id);
  }

  /** Short, so the attach socket path stays within the 108 bytes a unix socket allows. */
  bundle(id: string): string {
    return path.join(this.d.execRoot, 'c', id.slice(0, 32));
  }

  logPath(id: string): string {
    return path.join(this.dir(id), 'container.log');
  }

  attachSocket(id: string): string {
    return path.join(this.bundle(id), 'attach');
  }

  // ---------- loading and live restore ----------

  async init(): Promise<void> {
    await ensureDir(this.containersDir, 0o710);
    await ensureDir(this.exitsDir);
    for (const id of await fs.readdir(this.containersDir)) {
      try {
        const rec = await readJson<ContainerRecord>(path.join(this.dir(id), 'container.json'));
        this.records.set(rec.Id, rec);
        this.names.set(rec.Name, rec.Id);
        for (const m of rec.Mounts) if (m.Type === 'volume' && m.Name) this.d.volumes.addUser(m.Name, rec.Id);
      } catch (err) {
        this.d.log.warn({ id, err: errorMessage(err) }, 'skipping unreadable container record');
      }
    }
    this.watcher = watch(this.exitsDir, (_ev, file) => {
      if (file && this.records.has(String(file))) void this.handleExit(String(file));
    });
    this.poller = setInterval(() => void this.reconcile(), 2000);
    this.poller.unref();
    this.oom.start();
    await this.reconcile(true);
  }

  close(): void {
    this.watcher?.close();
    if (this.poller) clearInterval(this.poller);
    this.oom.stop();
    this.health?.close();
    for (const t of this.restartTimers.values()) clearTimeout(t);
  }

  /** Re-adopt running containers, record exits that happened while we were away, apply restart policies. */
  private async reconcile(boot = false): Promise<void> {
    for (const rec of this.records.values()) {
      if (!isLive(rec)) {
        if (boot && rec.State.Status === 'restarting') {
          rec.State.Status = 'exited';
          await this.save(rec);
        }
        if (boot && rec.HasBeenStarted && this.shouldRestart(rec, rec.State.ExitCode)) this.scheduleRestart(rec, 0);
        continue;
      }
      if (await exists(path.join(this.exitsDir, rec.Id))) {
        await this.handleExit(rec.Id);
        continue;
      }
      if (!boot) continue;
      const alive = rec.ConmonPid > 0 && (await processAlive(rec.ConmonPid, 'conmon'));
      if (alive) {
        const st = await this.d.runtime.state(rec.Id).catch(() => undefined);
        if (st?.status === 'paused' && rec.State.Status !== 'paused') rec.State.Status = 'paused';
        if (st?.status === 'running' && rec.State.Status === 'paused') rec.State.Status = 'running';
        this.health?.resume(rec);
        await this.save(rec);
        this.startedAtMs.set(rec.Id, Date.parse(rec.State.StartedAt));
        this.d.log.info({ id: rec.Id.slice(0, 12), pid: rec.State.Pid }, 're-adopted running container');
      } else {
        // the monitor is gone and left no exit code: Docker reports such a container as exited with 255
        await this.recordExit(rec, 255, new Date());
      }
    }
  }

  private async save(rec: ContainerRecord): Promise<void> {
    await atomicWriteJson(path.join(this.dir(rec.Id), 'container.json'), rec);
  }

  // ---------- lookup ----------

  list(): ContainerRecord[] {
    return [...this.records.values()];
  }

  find(ref: string): ContainerRecord | undefined {
    const r = this.records.get(ref);
    if (r) return r;
    const byName = this.names.get(ref.replace(/^\//, ''));
    if (byName) return this.records.get(byName);
    if (/^[a-f0-9]+$/.test(ref)) {
      const hits = [...this.records.keys()].filter((id) => id.startsWith(ref));
      if (hits.length === 1) return this.records.get(hits[0]!);
      if (hits.length > 1) throw invalid(`multiple IDs found with provided prefix: ${ref}`);
    }
    return undefined;
  }

  get(ref: string): ContainerRecord {
    const r = this.find(ref);
    if (!r) throw notFound(`No such container: ${ref}`);
    return r;
  }

  usesImage(imageId: string): ContainerRecord[] {
    return this.list().filter((r) => r.Image === imageId);
  }

  // ---------- create ----------

  async create(rawBody: unknown, name?: string): Promise<{ Id: string; Warnings: string[] }> {
    const body = parseBody(CreateBodySchema, rawBody, 'create container');
    if (name !== undefined && name !== '') {
      const n = name.replace(/^\//, '');
      if (!NAME_RE.test(n)) throw invalid(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
      name = n;
    }
    const image = this.d.images.resolve(body.Image);
    const hostConfig = normalizeHostConfig(body.HostConfig as Record<string, unknown>);
    const warnings = [...(await checkResources(body.Labels, hostConfig)), ...logConfigWarnings(hostConfig.LogConfig)];
    const id = newId();
    const { config, path: p, args } = mergeConfig(body, image, id);
    let cname = name || randomName();
    while (!name && this.names.has(cname)) cname = `${randomName()}_${Math.floor(Math.random() * 100)}`;
    const mounts = await this.planMounts(config.Volumes ?? {}, hostConfig);
    const now = new Date().toISOString();
    const rec: ContainerRecord = {
      Id: id,
      Name: cname,
      Created: now,
      Path: p,
      Args: args,
      Config: config,
      HostConfig: hostConfig,
      Image: image.id,
      ImageChain: image.layers.map((l) => l.chainId),
      State: { Status: 'created', Pid: 0, ExitCode: 0, Error: '', StartedAt: ZERO_TIME, FinishedAt: ZERO_TIME, OOMKilled: false },
      RestartCount: 0,
      ConmonPid: 0,
      ManuallyStopped: false,
      HasBeenStarted: false,
      Mounts: mounts,
      NetworkingConfig: (body.NetworkingConfig as ContainerRecord['NetworkingConfig']) ?? undefined,
    };
    // the name is claimed synchronously, so two creates with one name cannot both win
    const holder = this.names.get(cname);
    if (holder) throw conflict(`Conflict. The container name "/${cname}" is already in use by container "${holder}". You have to remove (or rename) that container to be able to reuse that name.`);
    this.names.set(cname, id);
    const size = quotaSize(hostConfig.StorageOpt, 'storage-opt');
    try {
      for (const m of [hostConfig.NetworkMode, hostConfig.PidMode, hostConfig.IpcMode]) if (m?.startsWith('container:')) this.get(m.slice(10));
      checkLinks(hostConfig.Links, (ref) => this.get(ref));
      this.d.network?.checkCreate(rec);
      const quota = size ? await this.d.quota.backend() : undefined;
      await ensureDir(this.dir(id), 0o710);
      await quota?.create(this.fsBase(id), size!);
      await this.d.snapshots.prepare(this.fsBase(id));
      // volumes exist from create on, as in Docker: `docker cp` into one works before the first start
      for (const m of mounts) {
        if (m.Type !== 'volume') continue;
        const vol = await this.d.volumes.create(m.Name);
        m.Name = vol.Name;
        m.Source = vol.Mountpoint;
        this.d.volumes.addUser(vol.Name, id);
      }
      // as Docker fills them at create (a named volume may need a mount of its own: it is filled at start)
      const anonymous = mounts.filter((m) => m.Anonymous && !m.NoCopy);
      if (anonymous.length) {
        const rootfs = await this.mountFs(rec);
        try {
          for (const m of anonymous) await this.populate(m, rootfs);
        } finally {
          await this.d.snapshots.unmount(this.fsBase(id));
        }
      }
      await this.save(rec);
    } catch (err) {
      this.names.delete(cname);
      this.d.volumes.dropUser(id);
      for (const m of mounts) if (m.Anonymous && m.Name) await this.d.volumes.remove(m.Name).catch(() => undefined);
      if (size) await this.removeFs(rec).catch(() => undefined);
      await removeTree(this.dir(id));
      throw err;
    }
    this.records.set(id, rec);
    this.d.events.emit('container', 'create', id, this.attrs(rec));
    return { Id: id, Warnings: warnings };
  }

  private async planMounts(imageVolumes: Record<string, object>, hc: ReturnType<typeof normalizeHostConfig>): Promise<MountPoint[]> {
    const out = new Map<string, MountPoint>();
    for (const b of hc.Binds ?? []) {
      const p = parseBind(b);
      if (out.has(p.target)) throw invalid(`Duplicate mount point: ${p.target}`);
      if (p.isVolume) {
        out.set(p.target, { Type: 'volume', Name: p.source || undefined, Source: '', Destination: p.target, Driver: 'local', Mode: p.readOnly ? 'ro' : 'z', RW: !p.readOnly, Propagation: '', Anonymous: !p.source, ...(p.noCopy ? { NoCopy: true } : {}) });
      } else {
        if (!(await exists(p.source))) await ensureDir(p.source); // Docker creates missing bind sources for -v
        out.set(p.target, { Type: 'bind', Source: p.source, Destination: p.target, Mode: p.readOnly ? 'ro' : '', RW: !p.readOnly, Propagation: p.propagation || 'rprivate' });
      }
    }
    for (const m of hc.Mounts ?? []) {
      const target = path.posix.normalize(m.Target);
      if (out.has(target)) throw invalid(`Duplicate mount point: ${target}`);
      if (m.Type === 'bind') {
        if (!m.Source || !(await exists(m.Source))) throw invalid(`invalid mount config for type "bind": bind source path does not exist: ${m.Source}`);
        out.set(target, { Type: 'bind', Source: m.Source, Destination: target, Mode: '', RW: !m.ReadOnly, Propagation: m.BindOptions?.Propagation || 'rprivate' });
      } else if (m.Type === 'volume') {
        out.set(target, { Type: 'volume', Name: m.Source || undefined, Source: '', Destination: target, Driver: 'local', Mode: 'z', RW: !m.ReadOnly, Propagation: '', Anonymous: !m.Source, ...(m.VolumeOptions?.NoCopy ? { NoCopy: true } : {}) });
      } else if (m.Type === 'tmpfs') {
        const opts = [m.TmpfsOptions?.SizeBytes ? `size=${m.TmpfsOptions.SizeBytes}` : '', m.TmpfsOptions?.Mode ? `mode=${m.TmpfsOptions.Mode.toString(8)}` : ''].filter(Boolean).join(',');
        out.set(target, { Type: 'tmpfs', Source: '', Destination: target, Mode: '', RW: !m.ReadOnly, Propagation: '', TmpfsOptions: opts });
      } else throw invalid(`mount type unknown: ${m.Type}`);
    }
    for (const [dest, opts] of Object.entries(hc.Tmpfs ?? {})) {
      const target = path.posix.normalize(dest);
      if (out.has(target)) throw invalid(`Duplicate mount point: ${target}`);
      out.set(target, { Type: 'tmpfs', Source: '', Destination: target, Mode: opts, RW: true, Propagation: '', TmpfsOptions: opts });
    }
    // --volumes-from NAME[:ro|:rw]: that container's volumes and binds, where this one mounts nothing itself
    for (const from of hc.VolumesFrom ?? []) {
      const [ref = '', mode] = from.split(':');
      if (mode !== undefined && mode !== 'ro' && mode !== 'rw') throw invalid(`invalid mode for volumes-from: ${from}`);
      // a missing source is a bad parameter, as in Docker: a 404 would send the docker CLI off to pull the image
      let src: ContainerRecord;
      try {
        src = this.get(ref);
      } catch (err) {
        throw invalid(errorMessage(err));
      }
      for (const m of src.Mounts) {
        if (m.Type === 'tmpfs' || out.has(m.Destination)) continue;
        // :rw cannot make a read-only mount writable
        out.set(m.Destination, { ...m, RW: m.RW && mode !== 'ro', Mode: mode ?? m.Mode, Anonymous: false });
      }
    }
    for (const dest of Object.keys(imageVolumes)) {
      const target = path.posix.normalize(dest);
      if (!out.has(target)) out.set(target, { Type: 'volume', Source: '', Destination: target, Driver: 'local', Mode: '', RW: true, Propagation: '', Anonymous: true });
    }
    return [...out.values()];
  }

  // ---------- start ----------

  async start(ref: string, attachHooks: AttachHook[] = []): Promise<void> {
    const rec = this.get(ref);
    await this.lock.run(rec.Id, () => this.startLocked(rec, attachHooks));
  }

  private async startLocked(rec: ContainerRecord, extraHooks: AttachHook[] = []): Promise<void> {
    await this.exiting.get(rec.Id); // the last run's cleanup first
    if (!this.records.has(rec.Id)) throw notFound(`No such container: ${rec.Id}`);
    if (rec.State.Status === 'paused') throw conflict(`cannot start a paused container, try unpause instead`);
    if (rec.State.Status === 'running') throw notModified('container already started');
    if (rec.State.Status === 'removing') throw conflict(`container is marked for removal and cannot be started`);
    const timer = this.restartTimers.get(rec.Id);
    if (timer) {
      clearTimeout(timer);
      this.restartTimers.delete(rec.Id);
    }
    const hooks = [...(this.pendingAttach.get(rec.Id) ?? []), ...extraHooks];
    this.pendingAttach.delete(rec.Id);
    const fsBase = this.fsBase(rec.Id);
    try {
      const rootfs = await this.mountFs(rec);
      await this.prepareMounts(rec, rootfs);
      const user = await resolveUser(rootfs, rec.Config.User, rec.HostConfig.GroupAdd ?? []);
      const links = resolveLinks(rec, (ref) => this.get(ref));
      const env = mergeEnv([DEFAULT_PATH, `HOSTNAME=${rec.Config.Hostname}`], rec.Config.Tty ? ['TERM=xterm'] : [], linkEnv(rec, links), rec.Config.Env);
      if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${user.home}`);
      const netns = await this.netnsFor(rec);
      const shared = await this.sharedNamespaces(rec);
      const etcFiles = await this.writeEtcFiles(rec, linkHosts(links));
      const spec = await buildSpec(rec, {
        ...shared,
        rootfs,
        user,
        env,
        args: [rec.Path, ...rec.Args],
        mounts: rec.Mounts,
        etcFiles,
        netns,
        initBinary: this.d.initBinary,
        cgroupsPath: cgroupsPathOf(rec.HostConfig, this.d.cgroupParent, rec.Id),
        extraBinds: this.d.lxcfs ? await this.d.lxcfs.binds() : undefined,
      });
      await applyRich(rec, spec, rootfs, this.d.richInits);
      if (rec.HostConfig.Init && !this.d.initBinary) throw invalid('--init is not available: no init binary (tini) found on this host');
      await this.d.runtime.delete(rec.Id);
      const stdin = rec.Config.OpenStdin;
      const { pid, conmonPid } = await this.d.runtime.create({
        id: rec.Id,
        name: rec.Name,
        bundle: this.bundle(rec.Id),
        spec,
        logPath: readable(rec.HostConfig.LogConfig) ? this.logPath(rec.Id) : undefined,
        logSizeMax: logSizeMax(rec.HostConfig.LogConfig),
        exitDir: this.exitsDir,
        tty: rec.Config.Tty,
        stdin,
        // StdinOnce closes stdin when the attached client leaves, but never a terminal's (Docker: detach keeps the shell)
        leaveStdinOpen: stdin && (!rec.Config.StdinOnce || rec.Config.Tty),
      });
      for (const h of hooks) await h(this.attachSocket(rec.Id)).catch((e) => this.d.log.warn({ err: errorMessage(e) }, 'attach failed'));
      await this.d.runtime.start(rec.Id);
      rec.State = { ...rec.State, Status: 'running', Pid: pid, ExitCode: 0, Error: '', StartedAt: new Date().toISOString(), FinishedAt: rec.State.FinishedAt, OOMKilled: false };
      rec.ConmonPid = conmonPid;
      rec.HasBeenStarted = true;
      rec.ManuallyStopped = false;
      this.startedAtMs.set(rec.Id, Date.now());
      this.health?.started(rec);
      await this.save(rec);
      this.d.events.emit('container', 'start', rec.Id, this.attrs(rec));
      await this.d.network?.announce(rec, (cid) => path.join(this.dir(cid), 'hosts'));
      // an exit that happened before the state was saved has already fired its watch event
      if (await exists(path.join(this.exitsDir, rec.Id))) void this.handleExit(rec.Id);
    } catch (err) {
      const msg = errorMessage(err);
      rec.State.Error = msg;
      rec.State.ExitCode = /executable file not found|no such file or directory/.test(msg) ? 127 : /permission denied/.test(msg) ? 126 : 128;
      if (rec.State.Status === 'restarting') rec.State.Status = 'exited';
      await this.d.runtime.delete(rec.Id).catch(() => undefined);
      await this.releaseNet(rec);
      await this.releaseVolumes(rec);
      await this.releaseShm(rec);
      if (!this.rootfsUsers.has(rec.Id)) await this.d.snapshots.unmount(fsBase).catch(() => undefined);
      await this.save(rec).catch(() => undefined);
      this.exits.emit(`fail:${rec.Id}`, msg);
      // Docker removes an auto-remove container whose start failed
      if (rec.HostConfig.AutoRemove) setImmediate(() => void this.remove(rec.Id, { force: true, volumes: true }).catch(() => undefined));
      if (err instanceof SampanError && err.code !== 'INTERNAL') throw err;
      if (/executable file not found|no such file or directory|permission denied|not a directory/.test(msg)) throw invalid(msg);
      throw err;
    }
  }

  /** Unmount the type/device volumes that no other running container uses any more. */
  private async releaseVolumes(rec: ContainerRecord): Promise<void> {
    for (const m of rec.Mounts) {
      if (m.Type !== 'volume' || !m.Name) continue;
      const name = m.Name;
      const shared = this.list().some((r) => r.Id !== rec.Id && isLive(r) && r.Mounts.some((x) => x.Type === 'volume' && x.Name === name));
      if (shared) continue;
      const vol = await this.d.volumes.get(name).catch(() => undefined);
      if (vol) await this.d.volumes.release(vol).catch((err) => this.d.log.warn({ volume: name, err: errorMessage(err) }, 'could not unmount the volume'));
    }
  }

  /** Named and anonymous volumes: make sure they exist; copy the image's content into new empty ones. */
  private async prepareMounts(rec: ContainerRecord, rootfs: string): Promise<void> {
    for (const m of rec.Mounts) {
      if (m.Type !== 'volume') continue;
      const vol = await this.d.volumes.create(m.Name);
      m.Name = vol.Name;
      m.Source = vol.Mountpoint;
      this.d.volumes.addUser(vol.Name, rec.Id);
      await this.d.volumes.acquire(vol);
      await this.populate(m, rootfs);
    }
  }

  /** Docker's copy-up, once per volume: a new, empty one gets what the image has at its destination. */
  private async populate(m: MountPoint, rootfs: string): Promise<void> {
    if (m.NoCopy) return;
    const marker = path.join(path.dirname(m.Source), '.populated');
    if (await exists(marker)) return;
    const inImage = path.join(rootfs, m.Destination);
    const empty = (await fs.readdir(m.Source)).length === 0;
    if (empty && (await exists(inImage))) await run('cp', ['-a', `${inImage}/.`, m.Source]).catch(() => undefined);
    await fs.writeFile(marker, '');
  }

  private async writeEtcFiles(rec: ContainerRecord, linkLines: string[]): Promise<{ hosts: string; hostname: string; resolvConf: string }> {
    const dir = this.dir(rec.Id);
    const files = { hosts: path.join(dir, 'hosts'), hostname: path.join(dir, 'hostname'), resolvConf: path.join(dir, 'resolv.conf') };
    const host = rec.HostConfig.NetworkMode === 'host';
    if (host) {
      await fs.copyFile('/etc/hosts', files.hosts).catch(() => fs.writeFile(files.hosts, '127.0.0.1\tlocalhost\n'));
      await fs.writeFile(files.hostname, `${(await fs.readFile('/etc/hostname', 'utf8').catch(() => 'localhost\n')).trim()}\n`);
    } else {
      const extra = (rec.HostConfig.ExtraHosts ?? []).map((h) => {
        const i = h.indexOf(':');
        return `${h.slice(i + 1)}\t${h.slice(0, i)}`;
      });
      extra.push(...linkLines, ...(this.d.network?.hostsLines(rec, rec.Net) ?? []));
      const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback', 'fe00::0\tip6-localnet', 'ff00::0\tip6-mcastprefix', 'ff02::1\tip6-allnodes', 'ff02::2\tip6-allrouters', ...extra];
      await fs.writeFile(files.hosts, `${lines.join('\n')}\n`);
      await fs.writeFile(files.hostname, `${rec.Config.Hostname}\n`);
    }
    let resolv = await fs.readFile('/etc/resolv.conf', 'utf8').catch(() => '');
    const hc = rec.HostConfig;
    if (hc.Dns.length || hc.DnsSearch.length || hc.DnsOptions.length) {
      const keep = resolv.split('\n').filter((l) => !(hc.Dns.length && l.startsWith('nameserver')) && !(hc.DnsSearch.length && l.startsWith('search')) && !(hc.DnsOptions.length && l.startsWith('options')));
      resolv = [...keep.filter(Boolean), ...hc.Dns.map((d) => `nameserver ${d}`), ...(hc.DnsSearch.length ? [`search ${hc.DnsSearch.join(' ')}`] : []), ...(hc.DnsOptions.length ? [`options ${hc.DnsOptions.join(' ')}`] : [])].join('\n') + '\n';
    }
    resolv = this.d.network?.resolvConf(rec, resolv) ?? resolv;
    await fs.writeFile(files.resolvConf, resolv);
    return files;
  }

  private async netnsFor(rec: ContainerRecord): Promise<string | undefined> {
    const mode = rec.HostConfig.NetworkMode;
    if (mode === 'host') return 'host';
    if (mode.startsWith('container:')) {
      const other = this.get(mode.slice(10));
      if (!isLive(other)) throw conflict(`cannot join network of a non running container: ${other.Id}`);
      return other.Net?.Netns ?? `/proc/${other.State.Pid}/ns/net`;
    }
    if (!this.d.network) return undefined; // a fresh namespace with lo
    if (rec.Net) await this.releaseNet(rec); // left from a run the engine did not see end
    rec.Net = await this.d.network.attach(rec);
    return rec.Net?.Netns; // none: a fresh namespace with lo
  }

  /** A shareable IPC namespace's /dev/shm: a tmpfs on the host, so that joining containers can bind it too. */
  private shmDir(id: string): string {
    return path.join(this.dir(id), 'shm');
  }

  private async releaseShm(rec: ContainerRecord): Promise<void> {
    const dir = this.shmDir(rec.Id);
    if (await mountedAt(dir).catch(() => false)) await run('umount', [dir]).catch((err) => this.d.log.warn({ id: rec.Id.slice(0, 12), err: errorMessage(err) }, 'could not unmount /dev/shm'));
  }

  /** PID and IPC namespaces to join (Docker's "host" and "container:NAME" modes), and the /dev/shm that goes with IPC. */
  private async sharedNamespaces(rec: ContainerRecord): Promise<{ pidns?: string; ipcns?: string; shmSource?: string }> {
    const donor = (mode: string, what: string): ContainerRecord => {
      const other = this.get(mode.slice(10));
      if (!isLive(other)) throw conflict(`cannot join ${what} of a non running container: ${other.Id}`);
      return other;
    };
    const out: { pidns?: string; ipcns?: string; shmSource?: string } = {};
    const pid = rec.HostConfig.PidMode ?? '';
    if (pid === 'host') out.pidns = 'host';
    else if (pid.startsWith('container:')) out.pidns = `/proc/${donor(pid, 'PID').State.Pid}/ns/pid`;
    const ipc = rec.HostConfig.IpcMode ?? '';
    if (ipc === 'host') Object.assign(out, { ipcns: 'host', shmSource: '/dev/shm' });
    else if (ipc === 'shareable') {
      const dir = await ensureDir(this.shmDir(rec.Id), 0o1777);
      if (!(await mountedAt(dir))) await run('mount', ['-t', 'tmpfs', '-o', `nosuid,nodev,noexec,mode=1777,size=${rec.HostConfig.ShmSize || 67108864}`, 'shm', dir]);
      out.shmSource = dir;
    } else if (ipc.startsWith('container:')) {
      const other = donor(ipc, 'IPC');
      const how = other.HostConfig.IpcMode ?? '';
      if (how !== 'shareable' && how !== 'host') throw conflict(`cannot join IPC of container ${other.Id}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)`);
      Object.assign(out, { ipcns: `/proc/${other.State.Pid}/ns/ipc`, shmSource: how === 'host' ? '/dev/shm' : this.shmDir(other.Id) });
    }
    return out;
  }

  /** The container's endpoints and namespace go (CNI DEL: lease, veth, rules), at exit, failed start and rm. */
  private async releaseNet(rec: ContainerRecord): Promise<void> {
    if (!this.d.network) return;
    await this.d.network.detach(rec).catch((e) => this.d.log.warn({ id: rec.Id.slice(0, 12), err: errorMessage(e) }, 'network teardown failed'));
    rec.Net = undefined;
  }

  /** Run fn on the record under the container's lock, then save it (network connect and disconnect). */
  async mutate<T>(ref: string, fn: (rec: ContainerRecord) => Promise<T>): Promise<T> {
    const rec = this.get(ref);
    return this.lock.run(rec.Id, async () => {
      const out = await fn(rec);
      await this.save(rec);
      return out;
    });
  }

  // ---------- exits and restart policies ----------

  private async recordExit(rec: ContainerRecord, code: number, finished: Date): Promise<void> {
    this.health?.stop(rec);
    await this.releaseNet(rec);
    rec.State = { ...rec.State, Status: 'exited', Pid: 0, ExitCode: code, FinishedAt: finished.toISOString() };
    await this.save(rec);
  }

  /**
   * conmon wrote the exit file: record the exit and clean up, then apply --rm or the restart policy.
   * Waiters (stop, restart) see the exit only once it is recorded and the runtime state is gone.
   */
  private handleExit(id: string): Promise<void> {
    const pending = this.exiting.get(id);
    if (pending) return pending;
    const p = this.recordRuntimeExit(id)
      .then((rec) => {
        if (rec) void this.afterExit(rec);
      })
      .finally(() => this.exiting.delete(id));
    this.exiting.set(id, p);
    return p;
  }

  private async recordRuntimeExit(id: string): Promise<ContainerRecord | undefined> {
    const rec = this.records.get(id);
    if (!rec || !isLive(rec)) return undefined;
    const file = path.join(this.exitsDir, id);
    let code: number;
    let finished: Date;
    try {
      const [txt, st] = await Promise.all([fs.readFile(file, 'utf8'), fs.stat(file)]);
      if (!txt.trim()) return undefined; // not written yet; the next event or poll gets it
      code = Number(txt.trim());
      finished = st.mtime;
    } catch {
      return undefined;
    }
    if (!isLive(rec)) return undefined;
    rec.State.Status = 'exited'; // claims this exit before any await
    await fs.rm(file, { force: true });
    const oom = await this.oom.atExit(id, this.cgroupsPath(rec));
    await this.d.runtime.delete(id).catch(() => undefined);
    await this.releaseVolumes(rec);
    await this.releaseShm(rec);
    if (!this.rootfsUsers.has(id)) await this.d.snapshots.unmount(this.fsBase(id)).catch(() => undefined);
    await removeTree(this.bundle(id));
    rec.State.OOMKilled = oom.killed;
    if (oom.unreported) this.d.events.emit('container', 'oom', id, this.attrs(rec));
    await this.recordExit(rec, code, finished);
    this.d.log.info({ id: id.slice(0, 12), exitCode: code }, 'container exited');
    this.d.events.emit('container', 'die', id, { ...this.attrs(rec), exitCode: String(code) });
    this.exits.emit(`exit:${id}`, code);
    return rec;
  }

  private async afterExit(rec: ContainerRecord): Promise<void> {
    const id = rec.Id;
    const code = rec.State.ExitCode;
    if (rec.HostConfig.AutoRemove) {
      await this.remove(id, { force: true, volumes: true }).catch((e) => this.d.log.warn({ id, err: errorMessage(e) }, 'auto-remove failed'));
      return;
    }
    if (this.shouldRestart(rec, code)) {
      const ran = Date.now() - (this.startedAtMs.get(id) ?? 0);
      let delay = this.restartDelay.get(id) ?? 100;
      if (ran >= 10_000) delay = 100;
      this.restartDelay.set(id, Math.min(delay * 2, 60_000));
      rec.State.Status = 'restarting';
      await this.save(rec);
      this.scheduleRestart(rec, delay);
    }
  }

  private shouldRestart(rec: ContainerRecord, code: number): boolean {
    if (rec.ManuallyStopped) return false;
    const p = rec.HostConfig.RestartPolicy;
    switch (p.Name) {
      case 'always':
      case 'unless-stopped':
        return true;
      case 'on-failure':
        return code !== 0 && (p.MaximumRetryCount === 0 || rec.RestartCount < p.MaximumRetryCount);
      default:
        return false;
    }
  }

  private scheduleRestart(rec: ContainerRecord, delay: number): void {
    const t = setTimeout(() => {
      this.restartTimers.delete(rec.Id);
      if (!this.records.has(rec.Id) || rec.ManuallyStopped) return;
      rec.RestartCount++;
      void this.lock
        .run(rec.Id, () => this.startLocked(rec))
        .then(() => this.d.events.emit('container', 'restart', rec.Id, this.attrs(rec)))
        .catch((e) => {
          this.d.log.warn({ id: rec.Id.slice(0, 12), err: errorMessage(e) }, 'restart failed');
          if (this.shouldRestart(rec, rec.State.ExitCode)) this.scheduleRestart(rec, Math.min(delay * 2, 60_000));
        });
    }, delay);
    this.restartTimers.set(rec.Id, t);
  }

  private waitExit(id: string, timeoutMs: number): Promise<boolean> {
    const pending = this.exiting.get(id);
    if (pending) return pending.then(() => true);
    const rec = this.records.get(id);
    if (!rec || !isLive(rec)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const onExit = () => {
        clearTimeout(t);
        resolve(true);
      };
      const t = setTimeout(() => {
        this.exits.off(`exit:${id}`, onExit);
        resolve(false);
      }, timeoutMs);
      this.exits.once(`exit:${id}`, onExit);
    });
  }

  // ---------- update ----------

  /** `docker update`: new resources (applied live with runc update when running) and restart policy. */
  async update(ref: string, body: Record<string, unknown>): Promise<{ Warnings: string[] }> {
    const rec = this.get(ref);
    return this.lock.run(rec.Id, async () => {
      const next = mergeUpdate(rec.HostConfig, body);
      const warnings = validateResources(next);
      await this.growStorage(rec, next, body.StorageOpt);
      if (isLive(rec)) {
        await this.d.runtime.update(rec.Id, await updateResources(next)).catch((err: unknown) => {
          throw invalid(`Cannot update container ${rec.Id}: ${errorMessage(err)}`);
        });
      }
      rec.HostConfig = next;
      await this.save(rec);
      this.d.events.emit('container', 'update', rec.Id, this.attrs(rec));
      return { Warnings: warnings };
    });
  }

  /** A larger `size=` for the writable layer (Sampan's extension of the update API; Docker has none). */
  private async growStorage(rec: ContainerRecord, next: ContainerRecord['HostConfig'], opts: unknown): Promise<void> {
    const want = quotaSize(opts as Record<string, string> | undefined, 'storage-opt');
    if (!want) return;
    const have = quotaSize(rec.HostConfig.StorageOpt, 'storage-opt');
    if (!have) throw invalid(`container ${rec.Name} was created without --storage-opt size; only an existing size can be changed`);
    if (want < have) throw invalid(`the writable layer of ${rec.Name} cannot shrink (${have} → ${want} bytes)`);
    await (await this.d.quota.backend()).grow(this.fsBase(rec.Id), want, isLive(rec) || this.rootfsUsers.has(rec.Id));
    next.StorageOpt = { ...(rec.HostConfig.StorageOpt ?? {}), size: String(want) };
  }

  /** The cgroups path runc was given for this container. */
  cgroupsPath(rec: ContainerRecord): string {
    return cgroupsPathOf(rec.HostConfig, this.d.cgroupParent, rec.Id);
  }

  // ---------- stop, kill, restart, pause ----------

  async stop(ref: string, timeoutSec?: number, signal?: string): Promise<void> {
    const rec = this.get(ref);
    await this.lock.run(rec.Id, () => this.stopLocked(rec, timeoutSec, signal));
  }

  private async stopLocked(rec: ContainerRecord, timeoutSec?: number, signal?: string): Promise<void> {
    const timer = this.restartTimers.get(rec.Id);
    if (timer) {
      clearTimeout(timer);
      this.restartTimers.delete(rec.Id);
      rec.ManuallyStopped = true;
      rec.State.Status = 'exited';
      await this.save(rec);
      return;
    }
    if (!isLive(rec)) throw notModified('container already stopped');
    rec.ManuallyStopped = true;
    await this.save(rec);
    const sig = parseSignal(signal ?? rec.Config.StopSignal, 15);
    const t = timeoutSec ?? rec.Config.StopTimeout ?? 10;
    if (t !== 0 && sig !== 9) {
      await this.d.runtime.kill(rec.Id, sig).catch(() => undefined);
      if (rec.State.Status === 'paused') await this.d.runtime.resume(rec.Id).catch(() => undefined);
      if (await this.waitExit(rec.Id, t < 0 ? 2 ** 31 - 1 : t * 1000)) return;
      this.d.log.info({ id: rec.Id.slice(0, 12), timeout: t }, 'container did not stop in time; sending SIGKILL');
    }
    await this.d.runtime.kill(rec.Id, 9, true).catch(() => undefined);
    if (rec.State.Status === 'paused') await this.d.runtime.resume(rec.Id).catch(() => undefined);
    if (!(await this.waitExit(rec.Id, 10_000))) throw new SampanError('INTERNAL', `container ${rec.Id} did not exit after SIGKILL`);
  }

  async kill(ref: string, signal?: string): Promise<void> {
    const rec = this.get(ref);
    const sig = parseSignal(signal, 9);
    await this.lock.run(rec.Id, async () => {
      if (!isLive(rec)) throw conflict(`Cannot kill container: ${ref}: Container ${rec.Id} is not running`);
      if (sig === 9) {
        rec.ManuallyStopped = true;
        await this.save(rec);
      }
      await this.d.runtime.kill(rec.Id, sig);
      this.d.events.emit('container', 'kill', rec.Id, { ...this.attrs(rec), signal: String(sig) });
      if (sig === 9) await this.waitExit(rec.Id, 10_000);
    });
  }

  async restart(ref: string, timeoutSec?: number, signal?: string): Promise<void> {
    const rec = this.get(ref);
    await this.lock.run(rec.Id, async () => {
      if (isLive(rec) || this.restartTimers.has(rec.Id)) await this.stopLocked(rec, timeoutSec, signal);
      await this.startLocked(rec);
      this.d.events.emit('container', 'restart', rec.Id, this.attrs(rec));
    });
  }

  async pause(ref: string): Promise<void> {
    const rec = this.get(ref);
    await this.lock.run(rec.Id, async () => {
      if (rec.State.Status === 'paused') throw conflict(`Container ${rec.Id} is already paused`);
      if (rec.State.Status !== 'running') throw conflict(`Container ${rec.Id} is not running`);
      await this.d.runtime.pause(rec.Id);
      rec.State.Status = 'paused';
      this.health?.update(rec);
      await this.save(rec);
      this.d.events.emit('container', 'pause', rec.Id, this.attrs(rec));
    });
  }

  async unpause(ref: string): Promise<void> {
    const rec = this.get(ref);
    await this.lock.run(rec.Id, async () => {
      if (rec.State.Status !== 'paused') throw conflict(`Container ${rec.Id} is not paused`);
      await this.d.runtime.resume(rec.Id);
      rec.State.Status = 'running';
      this.health?.update(rec);
      await this.save(rec);
      this.d.events.emit('container', 'unpause', rec.Id, this.attrs(rec));
    });
  }

  // ---------- remove, rename, wait ----------

  async remove(ref: string, o: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    const rec = this.get(ref);
    await this.lock.run(rec.Id, async () => {
      await this.exiting.get(rec.Id);
      if (!this.records.has(rec.Id)) return;
      // one that its restart policy is about to start again counts as running, as in Docker
      const restarting = rec.State.Status === 'restarting' || this.restartTimers.has(rec.Id);
      if (isLive(rec) || restarting) {
        if (!o.force) {
          throw conflict(`cannot remove container "/${rec.Name}": container is ${isLive(rec) ? rec.State.Status : 'restarting'}: stop the container before removing or force remove`);
        }
        if (isLive(rec)) await this.stopLocked(rec, 0);
      }
      const timer = this.restartTimers.get(rec.Id);
      if (timer) clearTimeout(timer);
      this.restartTimers.delete(rec.Id);
      rec.State.Status = 'removing';
      this.health?.stop(rec);
      await this.d.runtime.delete(rec.Id).catch(() => undefined);
      await this.releaseNet(rec);
      await this.removeFs(rec);
      await this.releaseShm(rec);
      await removeTree(this.bundle(rec.Id));
      await fs.rm(path.join(this.exitsDir, rec.Id), { force: true });
      await removeTree(this.dir(rec.Id));
      this.records.delete(rec.Id);
      if (this.names.get(rec.Name) === rec.Id) this.names.delete(rec.Name);
      this.d.volumes.dropUser(rec.Id);
      if (o.volumes) {
        for (const m of rec.Mounts) {
          if (m.Type === 'volume' && m.Anonymous && m.Name) await this.d.volumes.remove(m.Name).catch(() => undefined);
        }
      }
      this.d.events.emit('container', 'destroy', rec.Id, this.attrs(rec));
      this.exits.emit(`removed:${rec.Id}`);
    });
  }

  /**
   * A legacy link by Docker's name for it, PARENT/ALIAS: the parent and the container linked. A link's name is a
   * container name to Docker, so one that does not exist is no such container.
   */
  linked(parentRef: string, alias: string): { parent: ContainerRecord; child: ContainerRecord; spec: string } {
    const parent = this.find(parentRef);
    const link = linkByAlias(parent?.HostConfig.Links, alias);
    const child = link && this.find(link.name);
    if (!parent || !link || !child) throw notFound(`No such container: ${parentRef}/${alias}`);
    return { parent, child, spec: link.spec };
  }

  /** `docker rm --link PARENT/ALIAS`: the parent keeps running; its next start goes without the link. */
  async removeLink(parentRef: string, alias: string): Promise<void> {
    const { parent, spec } = this.linked(parentRef, alias);
    await this.mutate(parent.Id, async (rec) => {
      const left = (rec.HostConfig.Links ?? []).filter((l) => l !== spec);
      rec.HostConfig.Links = left.length ? left : null;
    });
  }

  async rename(ref: string, newName: string): Promise<void> {
    const rec = this.get(ref);
    const n = newName.replace(/^\//, '');
    if (!n) throw invalid('Neither old nor new names may be empty');
    if (!NAME_RE.test(n)) throw invalid(`Invalid container name (${newName}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    if (n === rec.Name) throw invalid(`Renaming a container with the same name as its current name`);
    const holder = this.names.get(n);
    if (holder) throw conflict(`Conflict. The container name "/${n}" is already in use by container "${holder}". You have to remove (or rename) that container to be able to reuse that name.`);
    const old = rec.Name;
    this.names.set(n, rec.Id);
    this.names.delete(old);
    rec.Name = n;
    await this.save(rec);
    this.d.events.emit('container', 'rename', rec.Id, { ...this.attrs(rec), oldName: `/${old}` });
  }

  /** Docker's wait: resolves with the exit code once the condition holds. */
  wait(ref: string, cond: WaitCondition, aborted: Promise<void>): Promise<{ StatusCode: number; Error: { Message: string } | null }> {
    const rec = this.get(ref);
    const id = rec.Id;
    const result = () => ({ StatusCode: rec.State.ExitCode, Error: rec.State.Error ? { Message: rec.State.Error } : null });
    // an exit being recorded already reads as 'exited': its code is known only once the recording is done
    const exiting = this.exiting.get(id);
    if (cond === 'not-running' && exiting) return exiting.then(result);
    if (cond === 'not-running' && !isLive(rec) && rec.State.Status !== 'restarting') return Promise.resolve(result());
    return new Promise((resolve, reject) => {
      const evName = cond === 'removed' ? `removed:${id}` : `exit:${id}`;
      const done = () => {
        this.exits.off(evName, done);
        this.exits.off(`fail:${id}`, failed);
        resolve(result());
      };
      const failed = () => {
        // a start that fails never runs: a waiter for "removed" still waits for removal
        if (cond === 'removed') return;
        this.exits.off(evName, done);
        this.exits.off(`fail:${id}`, failed);
        resolve(result());
      };
      this.exits.on(evName, done);
      this.exits.on(`fail:${id}`, failed);
      void aborted.then(() => {
        this.exits.off(evName, done);
        this.exits.off(`fail:${id}`, failed);
        reject(new SampanError('UNAVAILABLE', 'client went away'));
      });
    });
  }

  /** Resolves when the container is not running (now, or at its next exit or removal). */
  stopped(id: string): Promise<void> {
    const rec = this.records.get(id);
    if (!rec || !isLive(rec)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.exits.off(`exit:${id}`, done);
        this.exits.off(`removed:${id}`, done);
        resolve();
      };
      this.exits.on(`exit:${id}`, done);
      this.exits.on(`removed:${id}`, done);
    });
  }

  // ---------- attach ----------

  /** Run the hook with the attach socket now (running) or just before the process starts (created). */
  async attach(ref: string, hook: AttachHook): Promise<void> {
    const rec = this.get(ref);
    if (isLive(rec)) {
      try {
        return await hook(this.attachSocket(rec.Id));
      } catch (err) {
        // a process that just ended takes conmon and its socket with it before its exit is recorded: then, as for
        // any stopped container, the session waits for the next start
        if (!(await this.exitRecorded(rec, 2000))) throw err;
      }
    }
    if (rec.State.Status === 'created' || rec.State.Status === 'exited' || rec.State.Status === 'restarting') {
      const list = this.pendingAttach.get(rec.Id) ?? [];
      list.push(hook);
      this.pendingAttach.set(rec.Id, list);
      return;
    }
    throw conflict(`You cannot attach to a stopped container, start it first`);
  }

  /** Resolves true once the container's exit is recorded, false if it still runs after `ms`. */
  private exitRecorded(rec: ContainerRecord, ms: number): Promise<boolean> {
    if (!isLive(rec)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.exits.off(`exit:${rec.Id}`, done);
        resolve(!isLive(rec));
      };
      const timer = setTimeout(done, ms);
      this.exits.on(`exit:${rec.Id}`, done);
    });
  }

  /** Calls fn if the container's next start fails; returns the unsubscribe function. */
  onStartFailure(id: string, fn: () => void): () => void {
    this.exits.once(`fail:${id}`, fn);
    return () => this.exits.off(`fail:${id}`, fn);
  }

  dropPendingAttach(id: string, hook: AttachHook): void {
    const list = this.pendingAttach.get(id);
    if (list) this.pendingAttach.set(id, list.filter((h) => h !== hook));
  }

  async resize(ref: string, h: number, w: number): Promise<void> {
    const rec = this.get(ref);
    if (!isLive(rec)) throw conflict(`Container ${rec.Id} is not running`);
    if (!rec.Config.Tty) return;
    await writeCtl(path.join(this.bundle(rec.Id), 'ctl'), h, w);
  }

  // ---------- helpers for views ----------

  attrs(rec: ContainerRecord): Record<string, string> {
    return { ...rec.Config.Labels, image: rec.Config.Image, name: rec.Name };
  }

  async top(ref: string, psArgs: string): Promise<{ Titles: string[]; Processes: string[][] }> {
    const rec = this.get(ref);
    if (!isLive(rec)) throw conflict(`Container ${rec.Id} is not running`);
    const pids = new Set((await this.d.runtime.pids(rec.Id)).map(String));
    const args = psArgs ? psArgs.split(/\s+/).filter(Boolean) : ['-ef'];
    let out: string;
    try {
      out = (await run('ps', args, { maxBuffer: 16 << 20 })).stdout;
    } catch (err) {
      throw invalid(`ps: ${(err as { stderr?: string }).stderr?.trim() || errorMessage(err)}`);
    }
    const lines = out.trimEnd().split('\n');
    const titles = lines[0]!.trim().split(/\s+/);
    const pidCol = titles.indexOf('PID');
    if (pidCol < 0) throw invalid(`Couldn't find PID field in ps output`);
    const procs: string[][] = [];
    for (const line of lines.slice(1)) {
      const f = line.trim().split(/\s+/);
      if (!pids.has(f[pidCol]!)) continue;
      procs.push([...f.slice(0, titles.length - 1), f.slice(titles.length - 1).join(' ')]);
    }
    return { Titles: titles, Processes: procs };
  }

  /** Where the container's overlay dirs are (upper, work, merged: snapshots.dirs). */
  fsBase(id: string): string {
    return path.join(this.dir(id), 'fs');
  }

  /** Docker's SizeRw (the writable layer's files) and SizeRootFs (those and the image's). */
  async sizes(rec: ContainerRecord): Promise<{ SizeRw: number; SizeRootFs: number }> {
    const rw = await treeSize(this.d.snapshots.dirs(this.fsBase(rec.Id)).upper);
    return { SizeRw: rw, SizeRootFs: rw + (this.d.images.byId(rec.Image as Digest)?.size ?? 0) };
  }

  /** The merged root, its size-limited writable layer made usable first (a host reboot undoes loop mounts). */
  private async mountFs(rec: ContainerRecord): Promise<string> {
    if (quotaSize(rec.HostConfig.StorageOpt, 'storage-opt')) await (await this.d.quota.backend()).ensure(this.fsBase(rec.Id));
    return this.d.snapshots.mount(this.fsBase(rec.Id), rec.ImageChain as Digest[]);
  }

  private async removeFs(rec: ContainerRecord): Promise<void> {
    const base = this.fsBase(rec.Id);
    await this.d.snapshots.unmount(base);
    if (quotaSize(rec.HostConfig.StorageOpt, 'storage-opt')) await (await this.d.quota.backend()).remove(base);
    await this.d.snapshots.remove(base);
  }

  /** Run fn with the container's merged root, mounting it for the duration if the container is not running. */
  async withRootfs<T>(ref: string, fn: (rootfs: string, rec: ContainerRecord) => Promise<T>): Promise<T> {
    const rec = this.get(ref);
    const id = rec.Id;
    const base = this.fsBase(id);
    // mount and unmount under the container's lock, counting users: one request's unmount must not pull the root
    // from under another request (or a start) that is using it
    const rootfs = await this.lock.run(id, async () => {
      const merged = await this.mountFs(rec);
      this.rootfsUsers.set(id, (this.rootfsUsers.get(id) ?? 0) + 1);
      return merged;
    });
    try {
      return await fn(rootfs, rec);
    } finally {
      await this.lock.run(id, async () => {
        const left = (this.rootfsUsers.get(id) ?? 1) - 1;
        if (left > 0) this.rootfsUsers.set(id, left);
        else this.rootfsUsers.delete(id);
        if (left === 0 && !isLive(rec)) await this.d.snapshots.unmount(base).catch(() => undefined);
      });
    }
  }
}

/** Is pid alive and (by its command line) the program we think it is? */
export async function processAlive(pid: number, comm: string): Promise<boolean> {
  try {
    const cmd = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8');
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
    return cmd.includes(comm) && !/\) Z /.test(stat);
  } catch {
    return false;
  }
}

/** conmon's control fifo: "1 <height> <width>" resizes the terminal. */
export async function writeCtl(ctl: string, h: number, w: number): Promise<void> {
  const { constants } = await import('node:fs');
  let fh;
  try {
    fh = await fs.open(ctl, constants.O_WRONLY | constants.O_NONBLOCK);
  } catch {
    return; // no reader yet: the next resize gets through
  }
  try {
    await fh.write(`1 ${h} ${w}\n`);
  } finally {
    await fh.close();
  }
}
