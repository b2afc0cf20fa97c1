import path from 'node:path';
import { EventEmitter } from 'node:events';
import { atomicWriteJson } from '../../lib/fsutil.js';
import { invalid, notFound } from '../../lib/errors.js';
import { KeyedLock } from '../../lib/keyedlock.js';
import type { Logger } from '../../lib/log.js';
import type { ImageStore } from '../images/store.js';
import type { Snapshotter } from '../snapshots/snapshotter.js';
import type { Runtime } from '../runtime/runtime.js';
import type { EventBus } from '../events.js';
import type { VolumeService } from '../volumes/service.js';
import type { NetworkProvider } from '../network/provider.js';
import type { DiskQuotas } from '../quota/quota.js';
import type { RichInits } from './rich.js';
import type { ContainerRecord } from './model.js';
import { cgroupsPathOf } from './resources.js';

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

/** What the container service tells the health monitor (health.ts), which needs the service in turn. */
export interface HealthWatch {
  started(rec: ContainerRecord): void;
  update(rec: ContainerRecord): void;
  resume(rec: ContainerRecord): void;
  stop(rec: ContainerRecord): void;
  close(): void;
}

/** What a stop asks of the pre-stop hooks (prestop.ts, which runs them through the exec service). */
export interface PreStopRunner {
  /** Runs the container's hook, if any, within the stop's grace period (`graceMs`; negative: none); never throws. */
  run(rec: ContainerRecord, graceMs: number): Promise<void>;
}

/**
 * The bottom of the container service (service.ts): the records and names, where each container's files are, the
 * per-container lock and the exit signals the parts above share (mounts.ts, supervisor.ts, attach-hooks.ts).
 */
export class ContainerStore {
  protected readonly records = new Map<string, ContainerRecord>();
  protected readonly names = new Map<string, string>();
  protected readonly lock = new KeyedLock();
  protected readonly exits = new EventEmitter();
  /** Exits being recorded right now (their cleanup must finish before a stop returns or a start begins). */
  protected readonly exiting = new Map<string, Promise<void>>();
  /** How many requests (docker cp) are using each container's mounted root right now. */
  protected readonly rootfsUsers = new Map<string, number>();
  readonly containersDir: string;
  readonly exitsDir: string;
  /** Health checks (set by the engine: they run through its exec service). */
  health?: HealthWatch;
  /** Pre-stop hooks (set by the engine, as health checks). */
  preStop?: PreStopRunner;

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

  /** Where the container's overlay dirs are (upper, work, merged: snapshots.dirs). */
  fsBase(id: string): string {
    return path.join(this.dir(id), 'fs');
  }

  protected async save(rec: ContainerRecord): Promise<void> {
    await atomicWriteJson(path.join(this.dir(rec.Id), 'container.json'), rec);
  }

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

  attrs(rec: ContainerRecord): Record<string, string> {
    return { ...rec.Config.Labels, image: rec.Config.Image, name: rec.Name };
  }

  /** The cgroups path runc was given for this container. */
  cgroupsPath(rec: ContainerRecord): string {
    return cgroupsPathOf(rec.HostConfig, this.d.cgroupParent, rec.Id);
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
}
