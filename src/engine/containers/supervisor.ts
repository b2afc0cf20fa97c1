import { promises as fs, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { ensureDir, exists, readJson, removeTree } from '../../lib/fsutil.js';
import { SampanError, errorMessage } from '../../lib/errors.js';
import { isLive, type ContainerRecord } from './model.js';
import { OomWatch } from './oom.js';
import { ContainerMounts } from './mounts.js';

export type WaitCondition = 'next-exit' | 'not-running' | 'removed';

/**
 * The exit and restart supervisor: loading and live restore, the exit files conmon writes, OOM kills, --rm and
 * restart policies with their timers, and waiting for exits. Starting and removing are the lifecycle's (service.ts).
 */
export abstract class ContainerSupervisor extends ContainerMounts {
  protected abstract startLocked(rec: ContainerRecord): Promise<void>;
  abstract remove(ref: string, o?: { force?: boolean; volumes?: boolean }): Promise<void>;

  protected readonly restartTimers = new Map<string, NodeJS.Timeout>();
  protected readonly startedAtMs = new Map<string, number>();
  private readonly restartDelay = new Map<string, number>();
  private watcher?: FSWatcher;
  private poller?: NodeJS.Timeout;
  private readonly oom = new OomWatch(
    () => this.list().filter((r) => r.State.Status === 'running' && r.HostConfig.Memory > 0).map((r) => ({ id: r.Id, cgroupsPath: this.cgroupsPath(r) })),
    (id) => {
      const rec = this.records.get(id);
      if (rec) this.d.events.emit('container', 'oom', id, this.attrs(rec));
    },
  );

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
  protected handleExit(id: string): Promise<void> {
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

  protected waitExit(id: string, timeoutMs: number): Promise<boolean> {
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

  /** Resolves true once the container's exit is recorded, false if it still runs after `ms`. */
  protected exitRecorded(rec: ContainerRecord, ms: number): Promise<boolean> {
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
