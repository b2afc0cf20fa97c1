import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { atomicWriteJson, ensureDir, mountedAt, readJson, removeTree, treeSize } from '../../lib/fsutil.js';
import { conflict, errorMessage, internal, invalid, notFound } from '../../lib/errors.js';
import { NAME_RE, newId } from '../../lib/ids.js';
import { KeyedLock } from '../../lib/keyedlock.js';
import type { EventBus } from '../events.js';
import { quotaSize, type DiskQuotas } from '../quota/quota.js';

export interface Volume {
  Name: string;
  Driver: 'local';
  Mountpoint: string;
  CreatedAt: string;
  Labels: Record<string, string>;
  Options: Record<string, string>;
  Scope: 'local';
}

export const ANON_LABEL = 'com.docker.volume.anonymous';

const run = promisify(execFile);
/** The local driver's options that need others with them (Docker's mandatory options). */
const NEEDS: Record<string, string[]> = { device: ['type'], type: ['device'], o: ['device', 'type'] };

/**
 * Local named volumes: a directory each under <root>/volumes/<name>/_data, kept until removed; `-o size=` caps it.
 * With `-o type= -o device= [-o o=]` (Docker's local driver options) the directory is a mount point instead: the file
 * system is mounted there while containers that use it run.
 */
export class VolumeService {
  private readonly lock = new KeyedLock();
  /** Which containers use each volume; the container service keeps it current. */
  readonly users = new Map<string, Set<string>>();

  constructor(
    private readonly dir: string,
    private readonly events: EventBus,
    private readonly quota: DiskQuotas,
  ) {}

  async init(): Promise<void> {
    await ensureDir(this.dir);
  }

  private metaPath(name: string): string {
    return path.join(this.dir, name, 'meta.json');
  }

  async get(name: string): Promise<Volume> {
    if (!NAME_RE.test(name)) throw notFound(`get ${name}: no such volume`);
    try {
      return await readJson<Volume>(this.metaPath(name));
    } catch {
      throw notFound(`get ${name}: no such volume`);
    }
  }

  async create(name: string | undefined, opts: { labels?: Record<string, string>; driverOpts?: Record<string, string>; driver?: string } = {}): Promise<Volume> {
    if (opts.driver && opts.driver !== 'local') throw invalid(`volume driver ${opts.driver} is not available (only "local")`);
    const anonymous = !name;
    const vname = name || newId();
    if (!NAME_RE.test(vname)) throw invalid(`create ${vname}: "${vname}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed`);
    const given = opts.driverOpts ?? {};
    for (const k of Object.keys(given)) {
      if (!['type', 'device', 'o', 'size'].includes(k)) throw invalid(`invalid option key: ${JSON.stringify(k)}`);
      for (const need of NEEDS[k] ?? []) if (!(need in given)) throw invalid(`missing required option: ${JSON.stringify(need)}`);
    }
    if ('size' in given && 'type' in given) throw invalid('the size option caps a plain volume; it cannot be combined with type and device');
    const size = quotaSize(opts.driverOpts, 'volume');
    return this.lock.run(vname, async () => {
      const existing = await readJson<Volume>(this.metaPath(vname)).catch(() => undefined);
      if (existing) {
        await this.ensureMounted(existing);
        return existing;
      }
      const base = path.join(this.dir, vname);
      if (size) {
        const quota = await this.quota.backend();
        await ensureDir(base);
        await quota.create(path.join(base, '_data'), size).catch(async (err: unknown) => {
          await quota.remove(path.join(base, '_data')).catch(() => undefined);
          await removeTree(base);
          throw err;
        });
      } else await ensureDir(path.join(base, '_data'));
      const vol: Volume = {
        Name: vname,
        Driver: 'local',
        Mountpoint: path.join(base, '_data'),
        CreatedAt: new Date().toISOString(),
        Labels: { ...(opts.labels ?? {}), ...(anonymous ? { [ANON_LABEL]: '' } : {}) },
        Options: opts.driverOpts ?? {},
        Scope: 'local',
      };
      await atomicWriteJson(this.metaPath(vname), vol);
      this.events.emit('volume', 'create', vname, { driver: 'local' });
      return vol;
    });
  }

  /** Mount a type/device volume's file system, unless it is mounted already (a container that uses it starts). */
  async acquire(vol: Volume): Promise<void> {
    const { type, device, o } = vol.Options;
    if (!type || !device) return;
    await this.lock.run(vol.Name, async () => {
      if (await mountedAt(vol.Mountpoint)) return;
      try {
        await run('mount', ['-t', type, ...(o ? ['-o', o] : []), device, vol.Mountpoint]);
      } catch (err) {
        const said = ((err as { stderr?: string }).stderr || errorMessage(err)).trim().split('\n')[0];
        throw internal(`error while mounting volume '${vol.Mountpoint}': failed to mount local volume: ${said}`);
      }
    });
  }

  /** Unmount a type/device volume's file system (the last container that used it stopped, or it is removed). */
  async release(vol: Volume): Promise<void> {
    if (!vol.Options.type || !vol.Options.device) return;
    await this.lock.run(vol.Name, async () => {
      if (await mountedAt(vol.Mountpoint)) await run('umount', [vol.Mountpoint]);
    });
  }

  /** A size-limited volume's file system, mounted again if a host reboot undid it. */
  private async ensureMounted(vol: Volume): Promise<void> {
    if (quotaSize(vol.Options, 'volume')) await (await this.quota.backend()).ensure(vol.Mountpoint);
  }

  async list(): Promise<Volume[]> {
    const out: Volume[] = [];
    for (const n of await fs.readdir(this.dir)) {
      try {
        out.push(await readJson<Volume>(this.metaPath(n)));
      } catch {
        // not a volume
      }
    }
    return out.sort((a, b) => a.Name.localeCompare(b.Name));
  }

  inUse(name: string): string[] {
    return [...(this.users.get(name) ?? [])];
  }

  /** `force`: a volume that does not exist is not an error (Docker's rm -f). */
  async remove(name: string, force = false): Promise<void> {
    let vol: Volume;
    try {
      vol = await this.get(name);
    } catch (err) {
      if (force) return;
      throw err;
    }
    const users = this.inUse(name);
    if (users.length) throw conflict(`remove ${name}: volume is in use - [${users.join(', ')}]`);
    // never delete through a mount: that would empty the device (a bind's host directory)
    await this.release(vol).catch((err: unknown) => {
      throw conflict(`remove ${name}: its file system cannot be unmounted: ${errorMessage(err)}`);
    });
    await this.lock.run(name, async () => {
      await fs.rm(this.metaPath(name), { force: true });
      if (quotaSize(vol.Options, 'volume')) await (await this.quota.backend()).remove(vol.Mountpoint);
      await removeTree(path.join(this.dir, name));
    });
    this.events.emit('volume', 'destroy', name, { driver: 'local' });
  }

  /** Remove unused volumes: anonymous ones only, unless `all` (API ≥ 1.42 semantics). */
  async prune(all: boolean, labelFilter: (labels: Record<string, string>) => boolean): Promise<{ VolumesDeleted: string[]; SpaceReclaimed: number }> {
    const deleted: string[] = [];
    let space = 0;
    for (const v of await this.list()) {
      if (this.inUse(v.Name).length) continue;
      if (!all && !(ANON_LABEL in v.Labels)) continue;
      if (!labelFilter(v.Labels)) continue;
      space += await treeSize(v.Mountpoint);
      await this.remove(v.Name);
      deleted.push(v.Name);
    }
    return { VolumesDeleted: deleted, SpaceReclaimed: space };
  }

  addUser(name: string, id: string): void {
    let s = this.users.get(name);
    if (!s) this.users.set(name, (s = new Set()));
    s.add(id);
  }

  dropUser(id: string): void {
    for (const s of this.users.values()) s.delete(id);
  }
}
