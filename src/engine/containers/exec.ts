import path from 'node:path';
import { conflict, invalid, notFound } from '../../lib/errors.js';
import { newId } from '../../lib/ids.js';
import { removeTree } from '../../lib/fsutil.js';
import type { ContainerService } from './service.js';
import type { AttachHook } from './attach-hooks.js';
import { buildExecProcess, capabilities, hostCaps } from './spec.js';
import { resolveUser } from './user.js';
import { mergeEnv } from './parse.js';
import { writeCtl } from './attach-hooks.js';
import type { ExecProcess } from '../runtime/runtime.js';
import { parseDetachKeys } from './detach.js';

export interface ExecConfig {
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  Tty?: boolean;
  Cmd?: string[];
  Env?: string[] | null;
  User?: string;
  WorkingDir?: string;
  Privileged?: boolean;
  DetachKeys?: string;
  ConsoleSize?: number[] | null;
}

interface ExecRecord {
  id: string;
  containerId: string;
  config: ExecConfig;
  running: boolean;
  started: boolean;
  exitCode: number | null;
  pid: number;
  session?: ExecProcess;
  bundle: string;
}

/** `docker exec` sessions, each under its own conmon; kept in memory like Docker's exec store. */
export class ExecService {
  private readonly execs = new Map<string, ExecRecord>();

  constructor(private readonly containers: ContainerService) {}

  create(ref: string, cfg: ExecConfig | undefined): { Id: string } {
    const rec = this.containers.get(ref);
    if (!cfg || !Array.isArray(cfg.Cmd) || cfg.Cmd.length === 0) throw invalid('No exec command specified');
    if (cfg.Cmd.some((a) => typeof a !== 'string')) throw invalid('exec: Cmd must be a list of strings');
    if (cfg.DetachKeys) parseDetachKeys(cfg.DetachKeys);
    if (rec.State.Status === 'paused') throw conflict(`Container ${rec.Id} is paused, unpause the container before exec`);
    if (rec.State.Status !== 'running') throw conflict(`Container ${rec.Id} is not running`);
    const id = newId();
    this.execs.set(id, { id, containerId: rec.Id, config: cfg, running: false, started: false, exitCode: null, pid: 0, bundle: path.join(this.containers.d.execRoot, 'e', id.slice(0, 32)) });
    this.containers.d.events.emit('container', `exec_create: ${cfg.Cmd.join(' ')}`, rec.Id, { ...this.containers.attrs(rec), execID: id });
    return { Id: id };
  }

  get(id: string): ExecRecord {
    const e = this.execs.get(id);
    if (!e) throw notFound(`No such exec instance: ${id}`);
    return e;
  }

  inspect(id: string): Record<string, unknown> {
    const e = this.get(id);
    const c = e.config;
    return {
      ID: e.id,
      Running: e.running,
      ExitCode: e.exitCode,
      ProcessConfig: { tty: !!c.Tty, entrypoint: c.Cmd![0], arguments: c.Cmd!.slice(1), privileged: !!c.Privileged, user: c.User ?? '' },
      OpenStdin: !!c.AttachStdin,
      OpenStderr: !!c.AttachStderr,
      OpenStdout: !!c.AttachStdout,
      CanRemove: false,
      ContainerID: e.containerId,
      // Docker keeps the keys as bytes, which its JSON shows in base64
      DetachKeys: c.DetachKeys ? parseDetachKeys(c.DetachKeys).toString('base64') : '',
      Pid: e.pid,
    };
  }

  /**
   * Start the session. `hook` (when attaching) gets the attach socket before the process runs.
   * Resolves once the process runs, with a promise of its exit code.
   */
  async start(id: string, detach: boolean, hook?: AttachHook, consoleSize?: number[] | null): Promise<{ exited: Promise<number> }> {
    const e = this.get(id);
    if (e.started) throw conflict(`Error: Exec command ${id} is already running`);
    const rec = this.containers.get(e.containerId);
    if (rec.State.Status !== 'running') throw conflict(`Container ${rec.Id} is not running`);
    e.started = true;
    const c = e.config;
    const rootfs = this.containers.d.snapshots.dirs(path.join(this.containers.dir(rec.Id), 'fs')).merged;
    const user = await resolveUser(rootfs, c.User || rec.Config.User, rec.HostConfig.GroupAdd ?? []);
    const env = mergeEnv(rec.Config.Tty || c.Tty ? ['TERM=xterm'] : [], ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', `HOSTNAME=${rec.Config.Hostname}`], rec.Config.Env, c.Env);
    if (!env.some((x) => x.startsWith('HOME='))) env.push(`HOME=${user.home}`);
    const process = await buildExecProcess(rec, { args: c.Cmd!, env, cwd: c.WorkingDir || rec.Config.WorkingDir || '/', user, tty: !!c.Tty, privileged: !!c.Privileged, consoleSize: consoleSize ?? c.ConsoleSize }, await capabilities(rec), await hostCaps());
    const session = await this.containers.d.runtime.exec({
      containerId: rec.Id,
      execId: id,
      name: rec.Name,
      bundle: e.bundle,
      process,
      tty: !!c.Tty,
      stdin: !!c.AttachStdin && !detach,
    });
    e.session = session;
    try {
      await session.ready();
      if (hook && !detach) await hook(path.join(e.bundle, 'attach'));
      e.pid = await session.run();
    } catch (err) {
      e.exitCode = 126;
      await removeTree(e.bundle);
      throw invalid((err as Error).message.replace(/^exec failed: /, 'OCI runtime exec failed: '));
    }
    e.running = true;
    this.containers.d.events.emit('container', `exec_start: ${c.Cmd!.join(' ')}`, rec.Id, { ...this.containers.attrs(rec), execID: id });
    const exited = session.exited().then(async (code) => {
      e.exitCode = code;
      e.running = false;
      this.containers.d.events.emit('container', 'exec_die', rec.Id, { ...this.containers.attrs(rec), execID: id, exitCode: String(code) });
      await removeTree(e.bundle);
      return code;
    });
    return { exited };
  }

  async resize(id: string, h: number, w: number): Promise<void> {
    const e = this.get(id);
    if (!e.config.Tty) return;
    await writeCtl(path.join(e.bundle, 'ctl'), h, w);
  }

  /** SIGKILL a running session's process (a health check past its timeout, as Docker kills it). */
  kill(id: string): void {
    const e = this.execs.get(id);
    if (!e?.running || e.pid <= 0) return;
    try {
      process.kill(e.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }

  /** Drop a finished session: health check execs are not kept, as in Docker. */
  forget(id: string): void {
    const e = this.execs.get(id);
    if (e && !e.running) this.execs.delete(id);
  }

  idsFor(containerId: string): string[] {
    return [...this.execs.values()].filter((e) => e.containerId === containerId).map((e) => e.id);
  }

  /** Forget sessions of a removed container. */
  dropContainer(containerId: string): void {
    for (const [id, e] of this.execs) if (e.containerId === containerId && !e.running) this.execs.delete(id);
  }
}
