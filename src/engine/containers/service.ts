import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ensureDir, exists, removeTree } from '../../lib/fsutil.js';
import { conflict, invalid, notFound, notModified, SampanError, errorMessage } from '../../lib/errors.js';
import { NAME_RE, newId, randomName } from '../../lib/ids.js';
import { quotaSize } from '../quota/quota.js';
import { ZERO_TIME, isLive, type ContainerRecord } from './model.js';
import { mergeConfig, normalizeHostConfig } from './create.js';
import { buildSpec, parseSignal } from './spec.js';
import { resolveUser } from './user.js';
import { applyRich } from './rich.js';
import { mergeEnv } from './parse.js';
import { CreateBodySchema, parseBody } from './validate.js';
import { checkLinks, linkByAlias, linkEnv, linkHosts, resolveLinks } from './links.js';
import { logConfigWarnings, logSizeMax, readable } from './logconfig.js';
import { checkResources, cgroupsPathOf, mergeUpdate, updateResources, validateResources } from './resources.js';
import { ContainerAttach, type AttachHook } from './attach-hooks.js';

// api/containers.ts names the wait conditions through the service
export type { WaitCondition } from './supervisor.js';

const run = promisify(execFile);
const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Container lifecycle with Docker's semantics; truth lives on disk and in the kernel. The service is one class
 * built in layers by concern, each in its file: store.ts (records, paths, lock) ← mounts.ts (file systems and
 * namespaces) ← supervisor.ts (exits, restart policies, OOM) ← attach-hooks.ts (attach, resize) ← this file
 * (create, start, stop, kill, restart, pause, update, remove, rename).
 */
export class ContainerService extends ContainerAttach {
  /** `id`: the one a cluster manager chose; a create of an id that exists answers that container (a repeated command). */
  async create(rawBody: unknown, name?: string, id = newId()): Promise<{ Id: string; Warnings: string[] }> {
    if (this.records.has(id)) return { Id: id, Warnings: [] };
    const body = parseBody(CreateBodySchema, rawBody, 'create container');
    if (name !== undefined && name !== '') {
      const n = name.replace(/^\//, '');
      if (!NAME_RE.test(n)) throw invalid(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
      name = n;
    }
    const image = this.d.images.resolve(body.Image);
    const hostConfig = normalizeHostConfig(body.HostConfig as Record<string, unknown>);
    const warnings = [...(await checkResources(body.Labels, hostConfig)), ...logConfigWarnings(hostConfig.LogConfig)];
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

  async start(ref: string, attachHooks: AttachHook[] = []): Promise<void> {
    const rec = this.get(ref);
    await this.lock.run(rec.Id, () => this.startLocked(rec, attachHooks));
  }

  protected async startLocked(rec: ContainerRecord, extraHooks: AttachHook[] = []): Promise<void> {
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
      // the pre-stop hook spends the grace period: the signal gets what is left of it
      const began = Date.now();
      const graceMs = t < 0 ? -1 : t * 1000;
      if (this.preStop) await this.preStop.run(rec, graceMs);
      await this.d.runtime.kill(rec.Id, sig).catch(() => undefined);
      if (rec.State.Status === 'paused') await this.d.runtime.resume(rec.Id).catch(() => undefined);
      if (await this.waitExit(rec.Id, graceMs < 0 ? 2 ** 31 - 1 : Math.max(0, graceMs - (Date.now() - began)))) return;
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
}
