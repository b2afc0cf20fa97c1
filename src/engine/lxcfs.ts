import { promises as fs } from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { Logger } from '../lib/log.js';
import { errorMessage } from '../lib/errors.js';
import { which } from '../lib/which.js';

export const LXCFS_DIR = '/var/lib/lxcfs';
/** The files LXCFS virtualizes that a container gets, by their path inside the container. */
export const LXCFS_FILES = ['/proc/meminfo', '/proc/cpuinfo', '/proc/stat', '/proc/uptime', '/proc/loadavg', '/proc/diskstats', '/proc/swaps', '/sys/devices/system/cpu/online'];


/** Where a fuse.lxcfs file system is mounted (at `at`, if given), from /proc/mounts. */
export async function findLxcfsMount(at?: string): Promise<string | undefined> {
  const text = await fs.readFile('/proc/mounts', 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const mp = f[1]?.replace(/\\040/g, ' ');
    if ((f[2] === 'fuse.lxcfs' || (f[0] === 'lxcfs' && f[2]?.startsWith('fuse'))) && (!at || mp === at)) return mp;
  }
  return undefined;
}

/** Is the mount answering? A dead lxcfs leaves "Transport endpoint is not connected". */
async function alive(dir: string): Promise<boolean> {
  try {
    await fs.readFile(path.join(dir, 'proc', 'uptime'), 'utf8');
    return true;
  } catch {
    return false;
  }
}

/**
 * The resource view: a running lxcfs (or one the engine starts, detached so it outlives the engine) whose
 * files are bound over /proc/meminfo, cpuinfo, stat, ... in containers, so they show the container's limits.
 */
export class Lxcfs {
  private dir?: string;
  private files: Array<{ source: string; destination: string }> = [];
  private timer?: NodeJS.Timeout;
  private checking = false;
  /** The running containers (their init's host pid), whose views are checked and repaired after an lxcfs restart. */
  running?: () => Array<{ name: string; pid: number }>;

  constructor(
    private readonly enabled: boolean,
    private readonly log: Logger,
    /** Use (or start) lxcfs at this mountpoint only, rather than any running one or /var/lib/lxcfs. */
    private readonly fixedDir?: string,
  ) {}

  get mountpoint(): string | undefined {
    return this.dir;
  }

  async init(): Promise<void> {
    if (!this.enabled) return;
    await this.ensure();
    this.timer = setInterval(() => void this.check(), 5000);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Restart a dead lxcfs, then give containers whose binds point at a dead lxcfs mount working files again. */
  async check(): Promise<void> {
    if (!this.dir || this.checking) return;
    this.checking = true;
    try {
      if (!(await alive(this.dir))) {
        this.log.warn({ dir: this.dir }, 'lxcfs stopped answering: starting it again');
        if (!(await this.ensure())) return;
      }
      for (const c of this.running?.() ?? []) {
        if (!c.pid || !(await this.stale(c.pid))) continue;
        const err = await this.remount(c.pid);
        if (err) this.log.warn({ container: c.name, err }, 'could not give the container working lxcfs files again: restart it');
        else this.log.info({ container: c.name }, 'container got working lxcfs files again after an lxcfs restart');
      }
    } finally {
      this.checking = false;
    }
  }

  /** Does the container have lxcfs binds that no longer answer ("Transport endpoint is not connected")? */
  private async stale(pid: number): Promise<boolean> {
    const info = await fs.readFile(`/proc/${pid}/mountinfo`, 'utf8').catch(() => '');
    if (!/ \/proc\/meminfo .* - fuse\.lxcfs /.test(info)) return false;
    try {
      await fs.readFile(`/proc/${pid}/root/proc/meminfo`, 'utf8');
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ENOTCONN';
    }
  }

  /**
   * Replace the container's lxcfs binds with binds of the new mount. A plain bind cannot reach into another mount
   * namespace; a detached clone (open_tree) can be moved there (move_mount) after setns. Node has no such calls, so
   * a few lines of python3 ctypes do it; returns an error message, or undefined on success.
   */
  private async remount(pid: number): Promise<string | undefined> {
    const args = [pid.toString(), ...this.files.flatMap((f) => [f.source, f.destination])];
    return new Promise((resolve) => {
      const c = spawn('python3', ['-c', REMOUNT_PY, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      c.stderr.on('data', (d: Buffer) => (err += d.toString()));
      c.on('error', (e) => resolve(`python3: ${errorMessage(e)}`));
      c.on('exit', (code) => resolve(code === 0 ? undefined : err.trim() || `exit ${code}`));
    });
  }

  /** Find or start lxcfs; remembers which of its files exist. */
  private async ensure(): Promise<boolean> {
    let dir = await findLxcfsMount(this.fixedDir);
    if (dir && !(await alive(dir))) {
      // a stale mount of an lxcfs that died: clear it so a new one can mount there
      await runQuiet('umount', ['-l', dir]);
      dir = undefined;
    }
    if (!dir) {
      const bin = await which('lxcfs');
      if (!bin) {
        this.log.info('lxcfs is not installed: containers see the host\'s /proc/meminfo and cpuinfo');
        return false;
      }
      const target = this.fixedDir ?? LXCFS_DIR;
      await fs.mkdir(target, { recursive: true });
      // --enable-cfs: cpuinfo/stat/online follow the CFS quota (--cpus); -l: a per-container loadavg.
      // Detached in its own session: it outlives the engine, and containers keep their views across engine restarts.
      const pidfile = this.fixedDir ? `${this.fixedDir}.pid` : '/run/sampan-lxcfs.pid';
      const child = spawn(bin, ['--enable-cfs', '-l', '-p', pidfile, target], { detached: true, stdio: 'ignore' });
      child.on('error', (err) => this.log.warn({ err: errorMessage(err) }, 'starting lxcfs failed'));
      child.unref();
      for (let i = 0; i < 50 && !(await alive(target)); i++) await new Promise((r) => setTimeout(r, 100));
      if (!(await alive(target))) {
        this.log.warn('lxcfs did not come up: containers see the host\'s /proc files');
        return false;
      }
      dir = target;
      this.log.info({ dir, pid: child.pid }, 'started lxcfs');
    }
    this.dir = dir;
    const files = [];
    for (const f of LXCFS_FILES) {
      const src = path.join(dir, f);
      if (await fs.stat(src).then(() => true, () => false)) files.push({ source: src, destination: f });
    }
    this.files = files;
    return true;
  }

  /** The binds for a container being started now (re-checking that lxcfs still answers). */
  async binds(): Promise<Array<{ source: string; destination: string }>> {
    if (!this.enabled) return [];
    if (!this.dir || !(await alive(this.dir))) {
      if (!(await this.ensure())) return [];
    }
    return this.files;
  }
}

function runQuiet(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: 'ignore' });
    c.on('error', () => resolve());
    c.on('exit', () => resolve());
  });
}

/** argv: pid, then source/destination pairs. open_tree(OPEN_TREE_CLONE) each source here, make it read-only
 * (mount_setattr), enter the container's mount namespace, detach the stale bind, move_mount the clone there. */
const REMOUNT_PY = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def fail(what):
    sys.stderr.write(what + ": " + os.strerror(ctypes.get_errno()) + "\\n")
    sys.exit(1)
pid = int(sys.argv[1]); pairs = sys.argv[2:]
trees = []
for i in range(0, len(pairs), 2):
    fd = libc.syscall(428, ctypes.c_int(-100), pairs[i].encode(), ctypes.c_uint(1 | 0o2000000))
    if fd < 0: fail("open_tree " + pairs[i])
    attr = (ctypes.c_uint64 * 4)(1, 0, 0, 0)
    libc.syscall(442, ctypes.c_int(fd), b"", ctypes.c_uint(0x1000), ctypes.byref(attr), ctypes.c_size_t(32))
    trees.append((fd, pairs[i + 1]))
ns = os.open("/proc/%d/ns/mnt" % pid, os.O_RDONLY)
if libc.setns(ns, 0x00020000) != 0: fail("setns")
for fd, dst in trees:
    libc.umount2(dst.encode(), 2)
    if libc.syscall(429, ctypes.c_int(fd), b"", ctypes.c_int(-100), dst.encode(), ctypes.c_uint(4)) != 0: fail("move_mount " + dst)
`;
