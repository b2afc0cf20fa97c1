import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { internal } from '../../lib/errors.js';
import { atomicWriteJson, ensureDir } from '../../lib/fsutil.js';
import type { Runc } from './runc.js';
import type { CreateOptions, ExecOptions, ExecProcess } from './runtime.js';

/** One JSON line that conmon writes on a sync or attach pipe ({"data": N, "message": "..."}). */
interface SyncMessage {
  data: number;
  message?: string;
}

/** Reads newline-delimited JSON messages from one of conmon's pipes. */
class PipeReader {
  private buf = '';
  private waiters: Array<(m: SyncMessage | undefined) => void> = [];
  private queue: SyncMessage[] = [];
  private ended = false;

  constructor(stream: Readable) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      this.buf += chunk;
      let i;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i).trim();
        this.buf = this.buf.slice(i + 1);
        if (!line) continue;
        try {
          this.push(JSON.parse(line) as SyncMessage);
        } catch {
          this.push({ data: -1, message: `conmon sent ${line}` });
        }
      }
    });
    const end = () => {
      this.ended = true;
      for (const w of this.waiters.splice(0)) w(undefined);
    };
    stream.on('end', end);
    stream.on('close', end);
    stream.on('error', end);
  }

  private push(m: SyncMessage) {
    const w = this.waiters.shift();
    if (w) w(m);
    else this.queue.push(m);
  }

  next(timeoutMs = 60_000): Promise<SyncMessage | undefined> {
    const q = this.queue.shift();
    if (q) return Promise.resolve(q);
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve(undefined);
      }, timeoutMs);
      const done = (m: SyncMessage | undefined) => {
        clearTimeout(t);
        resolve(m);
      };
      this.waiters.push(done);
    });
  }
}

/** A started exec session: its conmon, and the pipes that sequence it. */
class ExecSession implements ExecProcess {
  constructor(
    private readonly child: ChildProcess,
    private readonly start: Writable,
    private readonly attach: PipeReader,
    private readonly sync: PipeReader,
    readonly bundle: string,
  ) {}

  async ready(): Promise<void> {
    const m = await this.attach.next();
    if (!m || m.data < 0) throw internal(`exec failed: ${m?.message ?? 'conmon exited'}`);
  }

  async run(): Promise<number> {
    this.start.write(Buffer.from([0]));
    const m = await this.sync.next();
    if (!m || m.data < 0) throw internal(`exec failed: ${m?.message?.trim() ?? 'conmon exited'}`);
    return m.data;
  }

  async exited(): Promise<number> {
    const m = await this.sync.next(2 ** 31 - 1);
    this.child.unref();
    if (!m) {
      const code = await fs.readFile(path.join(this.bundle, 'exit', 'exit'), 'utf8').catch(() => '');
      return code ? Number(code) : -1;
    }
    return m.data;
  }
}

/** Starts conmon, the per-container monitor that holds stdio, writes the log and the exit code. */
export class Conmon {
  constructor(
    readonly binary: string,
    readonly runc: Runc,
  ) {}

  private baseArgs(cid: string, uuid: string, name: string, bundle: string, exitDir: string): string[] {
    const args = ['--api-version', '1', '-c', cid, '-u', uuid, '-r', this.runc.binary, '-b', bundle, '-p', path.join(bundle, 'pidfile'), '-n', name, '--exit-dir', exitDir, '--full-attach', '--log-level', 'error'];
    for (const a of this.runc.globalArgs()) args.push('--runtime-arg', a);
    return args;
  }

  /** runc create under a new conmon; resolves with the container's init pid and conmon's pid. */
  async create(o: CreateOptions): Promise<{ pid: number; conmonPid: number }> {
    await ensureDir(o.bundle);
    await ensureDir(o.exitDir);
    await fs.rm(path.join(o.exitDir, o.id), { force: true });
    await atomicWriteJson(path.join(o.bundle, 'config.json'), o.spec);
    const args = this.baseArgs(o.id, o.id, o.name, o.bundle, o.exitDir);
    args.push('-P', path.join(o.bundle, 'conmon.pid'), '-l', o.logPath ? `k8s-file:${o.logPath}` : 'none');
    if (o.logSizeMax) args.push('--log-size-max', String(o.logSizeMax));
    if (o.tty) args.push('-t');
    if (o.stdin) args.push('-i');
    if (o.stdin && o.leaveStdinOpen) args.push('--leave-stdin-open');
    const child = spawn(this.binary, args, {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
      env: { ...process.env, _OCI_SYNCPIPE: '3' },
      detached: true,
      cwd: o.bundle,
    });
    const sync = new PipeReader(child.stdio[3] as Readable);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const spawnError = new Promise<SyncMessage>((resolve) => child.once('error', (e) => resolve({ data: -1, message: e.message })));
    const m = await Promise.race([sync.next(), spawnError]);
    child.unref();
    (child.stdio[3] as Readable).destroy();
    child.stderr!.destroy();
    if (!m || m.data < 0) {
      await this.runc.delete(o.id).catch(() => undefined);
      const msg = (m?.message ?? stderr).trim() || 'conmon exited without starting the container';
      throw internal(cleanRuntimeMessage(msg));
    }
    const conmonPid = Number(await fs.readFile(path.join(o.bundle, 'conmon.pid'), 'utf8').catch(() => '0'));
    return { pid: m.data, conmonPid };
  }

  /** Start an exec session under its own conmon; call ready(), attach, then run(). */
  async exec(o: ExecOptions): Promise<ExecProcess> {
    await ensureDir(o.bundle);
    const exitDir = await ensureDir(path.join(o.bundle, 'exit'));
    const specFile = path.join(o.bundle, 'process.json');
    await atomicWriteJson(specFile, o.process);
    const args = this.baseArgs(o.containerId, o.execId, o.name, o.bundle, exitDir);
    args.push('-l', 'none', '-e', '--exec-attach', '--exec-process-spec', specFile);
    if (o.tty) args.push('-t');
    if (o.stdin) args.push('-i');
    const child = spawn(this.binary, args, {
      stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe', 'pipe'],
      env: { ...process.env, _OCI_SYNCPIPE: '3', _OCI_STARTPIPE: '4', _OCI_ATTACHPIPE: '5' },
      detached: true,
      cwd: o.bundle,
    });
    const start = child.stdio[4] as Writable;
    start.on('error', () => undefined);
    start.write(Buffer.from([0])); // conmon waits for this before it sets up
    return new ExecSession(child, start, new PipeReader((child.stdio as unknown as Readable[])[5]!), new PipeReader(child.stdio[3] as Readable), o.bundle);
  }
}

/** runc's errors arrive wrapped in conmon's and logrus' prefixes; keep the part a user can act on. */
export function cleanRuntimeMessage(msg: string): string {
  const m = /exec: "([^"]+)": (.*?)(: unknown)?$/m.exec(msg);
  if (m) return `failed to create task for container: exec: "${m[1]}": ${m[2]}`;
  return msg.replace(/^.*msg="/s, '').replace(/"\s*$/, '').trim();
}
