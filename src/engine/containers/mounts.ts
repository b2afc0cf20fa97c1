import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ensureDir, exists, mountedAt, treeSize } from '../../lib/fsutil.js';
import { conflict, invalid, errorMessage } from '../../lib/errors.js';
import type { Digest } from '../../lib/digest.js';
import { quotaSize } from '../quota/quota.js';
import { isLive, type ContainerRecord, type MountPoint } from './model.js';
import { parseBind, type normalizeHostConfig } from './create.js';
import { ContainerStore } from './store.js';

const run = promisify(execFile);

/**
 * A container's file systems and namespaces: its root (snapshot and quota), volumes, binds and tmpfs mounts, the
 * namespaces it joins (network, PID, IPC and its /dev/shm) and the /etc files it gets.
 */
export class ContainerMounts extends ContainerStore {
  protected async planMounts(imageVolumes: Record<string, object>, hc: ReturnType<typeof normalizeHostConfig>): Promise<MountPoint[]> {
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

  /** Named and anonymous volumes: make sure they exist; copy the image's content into new empty ones. */
  protected async prepareMounts(rec: ContainerRecord, rootfs: string): Promise<void> {
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
  protected async populate(m: MountPoint, rootfs: string): Promise<void> {
    if (m.NoCopy) return;
    const marker = path.join(path.dirname(m.Source), '.populated');
    if (await exists(marker)) return;
    const inImage = path.join(rootfs, m.Destination);
    const empty = (await fs.readdir(m.Source)).length === 0;
    if (empty && (await exists(inImage))) await run('cp', ['-a', `${inImage}/.`, m.Source]).catch(() => undefined);
    await fs.writeFile(marker, '');
  }

  /** Unmount the type/device volumes that no other running container uses any more. */
  protected async releaseVolumes(rec: ContainerRecord): Promise<void> {
    for (const m of rec.Mounts) {
      if (m.Type !== 'volume' || !m.Name) continue;
      const name = m.Name;
      const shared = this.list().some((r) => r.Id !== rec.Id && isLive(r) && r.Mounts.some((x) => x.Type === 'volume' && x.Name === name));
      if (shared) continue;
      const vol = await this.d.volumes.get(name).catch(() => undefined);
      if (vol) await this.d.volumes.release(vol).catch((err) => this.d.log.warn({ volume: name, err: errorMessage(err) }, 'could not unmount the volume'));
    }
  }

  protected async writeEtcFiles(rec: ContainerRecord, linkLines: string[]): Promise<{ hosts: string; hostname: string; resolvConf: string }> {
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

  protected async netnsFor(rec: ContainerRecord): Promise<string | undefined> {
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

  protected async releaseShm(rec: ContainerRecord): Promise<void> {
    const dir = this.shmDir(rec.Id);
    if (await mountedAt(dir).catch(() => false)) await run('umount', [dir]).catch((err) => this.d.log.warn({ id: rec.Id.slice(0, 12), err: errorMessage(err) }, 'could not unmount /dev/shm'));
  }

  /** PID and IPC namespaces to join (Docker's "host" and "container:NAME" modes), and the /dev/shm that goes with IPC. */
  protected async sharedNamespaces(rec: ContainerRecord): Promise<{ pidns?: string; ipcns?: string; shmSource?: string }> {
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
  protected async releaseNet(rec: ContainerRecord): Promise<void> {
    if (!this.d.network) return;
    await this.d.network.detach(rec).catch((e) => this.d.log.warn({ id: rec.Id.slice(0, 12), err: errorMessage(e) }, 'network teardown failed'));
    rec.Net = undefined;
  }

  /** The merged root, its size-limited writable layer made usable first (a host reboot undoes loop mounts). */
  protected async mountFs(rec: ContainerRecord): Promise<string> {
    if (quotaSize(rec.HostConfig.StorageOpt, 'storage-opt')) await (await this.d.quota.backend()).ensure(this.fsBase(rec.Id));
    return this.d.snapshots.mount(this.fsBase(rec.Id), rec.ImageChain as Digest[]);
  }

  protected async removeFs(rec: ContainerRecord): Promise<void> {
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

  /** Docker's SizeRw (the writable layer's files) and SizeRootFs (those and the image's). */
  async sizes(rec: ContainerRecord): Promise<{ SizeRw: number; SizeRootFs: number }> {
    const rw = await treeSize(this.d.snapshots.dirs(this.fsBase(rec.Id)).upper);
    return { SizeRw: rw, SizeRootFs: rw + (this.d.images.byId(rec.Image as Digest)?.size ?? 0) };
  }
}
