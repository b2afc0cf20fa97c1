/**
 * Rich containers (PouchContainer's `--rich`): an init as PID 1 that reaps orphans and forwards signals, an optional
 * initscript run before the command at every start, and the container's env exported to login shells, so a container
 * can host an SSH server and act like a small machine. Not privileged: the capabilities stay Docker's default set,
 * which already has what an SSH server needs (SETUID, SETGID, CHOWN, SYS_CHROOT, AUDIT_WRITE, ...).
 */
import { promises as fs, constants, existsSync } from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { errorMessage, invalid } from '../../lib/errors.js';
import type { ContainerConfig, ContainerRecord } from './model.js';
import type { CreateBody } from './validate.js';
import { isCgroupV2 } from './resources.js';

const run = promisify(execFile);

export const RICH_MODES = ['dumb-init', 'tini', 'systemd'] as const;
export type RichMode = (typeof RICH_MODES)[number];

/** A host binary bound into containers; a dynamically linked one brings the host's loader and libraries along. */
export interface HostBinary {
  path: string;
  loader?: string;
  libs?: Array<{ name: string; path: string }>;
}

export type RichInits = Partial<Record<'dumb-init' | 'tini', HostBinary>>;

/** Where the init and its libraries appear inside the container. */
const DIR = '/.sampan';
const ENV_FILE = 'etc/profile.d/sampan-env.sh';
/** A login shell reads /etc/profile only: images without one get this, so /etc/profile.d is read. */
const PROFILE = '# written by sampan: login shells read /etc/profile.d\nfor f in /etc/profile.d/*.sh; do [ -r "$f" ] && . "$f"; done\nunset f\n';
/** Runs the initscript ($1), stops the start visibly if it fails, then becomes the container's command. */
const WRAPPER = 's=$1; shift; if [ -x "$s" ]; then "$s"; else /bin/sh "$s"; fi; rc=$?; if [ "$rc" -ne 0 ]; then echo "sampan: initscript $s failed with exit code $rc" >&2; exit "$rc"; fi; exec "$@"';

/** The create body's Rich, RichMode and InitScript, checked, as the container's Config keeps them. */
export function richConfig(body: CreateBody, config: ContainerConfig): Pick<ContainerConfig, 'Rich' | 'RichMode' | 'InitScript' | 'StopSignal'> {
  const mode = body.RichMode || undefined;
  const script = body.InitScript || undefined;
  if (!body.Rich) {
    if (mode) throw invalid('RichMode needs Rich: set Rich to true (--rich) to choose a rich mode');
    if (script) throw invalid('InitScript needs Rich: set Rich to true (--rich) to run an initscript');
    return {};
  }
  if (mode && !(RICH_MODES as readonly string[]).includes(mode)) throw invalid(`invalid RichMode "${mode}": use one of ${RICH_MODES.join(', ')}`);
  if (script && !path.posix.isAbsolute(script)) throw invalid(`invalid InitScript "${script}": it must be an absolute path inside the container`);
  if ((body.HostConfig as { Init?: boolean | null } | null | undefined)?.Init) throw invalid('Rich and Init cannot be used together: a rich container has its own init');
  const out: ReturnType<typeof richConfig> = { Rich: true, RichMode: (mode as RichMode | undefined) ?? 'dumb-init' };
  if (script) out.InitScript = script;
  // systemd shuts down cleanly on SIGRTMIN+3; SIGTERM would only make it re-execute itself
  if (out.RichMode === 'systemd' && !config.StopSignal) out.StopSignal = 'SIGRTMIN+3';
  return out;
}

/** Does the ELF file ask for a program interpreter (dynamically linked)? */
async function hasInterp(file: string): Promise<boolean> {
  const fh = await fs.open(file, 'r');
  try {
    const h = Buffer.alloc(64);
    await fh.read(h, 0, 64, 0);
    if (h.readUInt32BE(0) !== 0x7f454c46 || h[4] !== 2 || h[5] !== 1) return true; // not ELF64 LE: assume it needs one
    const phoff = Number(h.readBigUInt64LE(0x20));
    const phentsize = h.readUInt16LE(0x36);
    const phnum = h.readUInt16LE(0x38);
    const ph = Buffer.alloc(phentsize * phnum);
    await fh.read(ph, 0, ph.length, phoff);
    for (let i = 0; i < phnum; i++) if (ph.readUInt32LE(i * phentsize) === 3 /* PT_INTERP */) return true;
    return false;
  } finally {
    await fh.close();
  }
}

/**
 * What binding `file` into a container takes. Debian's dumb-init is dynamically linked: it then runs under the host's
 * own loader with the host's libraries (`ld.so --library-path`), so it works in images without a libc (busybox) and
 * never mixes with the image's libc.
 */
export async function hostBinary(file: string): Promise<HostBinary | undefined> {
  try {
    const real = await fs.realpath(file);
    if (!(await hasInterp(real))) return { path: real };
    const { stdout } = await run('ldd', [real]);
    const libs: Array<{ name: string; path: string }> = [];
    let loader: string | undefined;
    for (const line of stdout.split('\n')) {
      const lib = /^\s*(\S+) => (\/\S+) \(/.exec(line);
      if (lib) libs.push({ name: lib[1]!, path: await fs.realpath(lib[2]!) });
      else if (/^\s*\/\S+ \(/.test(line)) loader = await fs.realpath(line.trim().split(' ')[0]!);
    }
    return loader ? { path: real, loader, libs } : undefined;
  } catch {
    return undefined;
  }
}

/** Binds `bin` under /.sampan and returns the argv prefix that runs it. */
function bindInit(bin: HostBinary, name: string, mounts: Array<Record<string, unknown>>): string[] {
  const ro = (source: string, destination: string) => mounts.push({ destination, type: 'bind', source, options: ['rbind', 'ro', 'rprivate'] });
  ro(bin.path, `${DIR}/${name}`);
  if (!bin.loader) return [`${DIR}/${name}`];
  ro(bin.loader, `${DIR}/ld.so`);
  for (const l of bin.libs ?? []) ro(l.path, `${DIR}/lib/${l.name}`);
  // --inhibit-cache: the image's /etc/ld.so.cache must not lead the host's loader to the image's libc
  return [`${DIR}/ld.so`, '--inhibit-cache', '--library-path', `${DIR}/lib`, `${DIR}/${name}`];
}

async function lexists(p: string): Promise<boolean> {
  return fs.lstat(p).then(() => true, () => false);
}

/**
 * `rel`'s directory under rootfs, created where missing. The engine writes there as root on the host: a symlink in the
 * image could point anywhere on the host, so none is followed.
 */
async function safeDir(rootfs: string, rel: string): Promise<string> {
  let cur = rootfs;
  for (const part of rel.split('/').filter(Boolean)) {
    cur = path.join(cur, part);
    const st = await fs.lstat(cur).catch(() => undefined);
    if (!st) await fs.mkdir(cur, { mode: 0o755 });
    else if (!st.isDirectory()) throw invalid(`rich container: /${path.relative(rootfs, cur)} in the image is not a directory (a symlink?); cannot write /${rel}`);
  }
  return cur;
}

async function writeNoFollow(file: string, data: string, exclusive = false): Promise<void> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | (exclusive ? constants.O_EXCL : constants.O_TRUNC);
  const fh = await fs.open(file, flags, 0o644);
  try {
    await fh.writeFile(data);
    await fh.chmod(0o644);
  } finally {
    await fh.close();
  }
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** `export K='V'` lines for a login shell; HOSTNAME, HOME and TERM are the session's own. */
export function envScript(env: string[]): string {
  const lines = ['# written by sampan at each start: the container\'s environment, for login shells (SSH sessions)'];
  for (const e of env) {
    const i = e.indexOf('=');
    const k = e.slice(0, i);
    if (i <= 0 || ['HOSTNAME', 'HOME', 'TERM'].includes(k) || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) continue;
    lines.push(`export ${k}=${quote(e.slice(i + 1))}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Writes /etc/profile.d/sampan-env.sh, and an /etc/profile that reads it where the image has none. */
async function writeProfileEnv(rootfs: string, env: string[]): Promise<void> {
  const dir = await safeDir(rootfs, path.dirname(ENV_FILE));
  await writeNoFollow(path.join(dir, path.basename(ENV_FILE)), envScript(env));
  const profile = path.join(rootfs, 'etc/profile');
  if (!(await lexists(profile))) await writeNoFollow(profile, PROFILE, true);
}

/** systemd runs the initscript as a oneshot unit before multi-user.target (systemd, not sampan, is PID 1 then). */
async function writeInitUnit(rootfs: string, script: string): Promise<void> {
  if (!(await lexists(path.join(rootfs, 'etc/systemd/system')))) return;
  const dir = await safeDir(rootfs, 'etc/systemd/system');
  const arg = `"${script.replace(/[\\"]/g, (c) => `\\${c}`).replace(/%/g, '%%').replace(/\$/g, '$$$$')}"`;
  const unit = ['[Unit]', 'Description=sampan rich container initscript', 'Before=multi-user.target', '', '[Service]', 'Type=oneshot', 'RemainAfterExit=yes', `ExecStart=/bin/sh ${arg}`, '', '[Install]', 'WantedBy=multi-user.target', ''].join('\n');
  await writeNoFollow(path.join(dir, 'sampan-initscript.service'), unit);
  const wants = await safeDir(rootfs, 'etc/systemd/system/multi-user.target.wants');
  const link = path.join(wants, 'sampan-initscript.service');
  if (!(await lexists(link))) await fs.symlink('/etc/systemd/system/sampan-initscript.service', link);
}

/**
 * At start, for a rich container: turn the OCI spec's process into the rich init running it, and write the env
 * for login shells into the root. `spec` is what buildSpec made.
 */
export async function applyRich(rec: ContainerRecord, spec: Record<string, unknown>, rootfs: string, inits: RichInits = {}): Promise<void> {
  const c = rec.Config;
  if (!c.Rich) return;
  const proc = spec.process as { args: string[]; env: string[] };
  const mounts = spec.mounts as Array<Record<string, unknown>>;
  const mode = (c.RichMode || 'dumb-init') as RichMode;
  await writeProfileEnv(rootfs, proc.env).catch((err: unknown) => {
    throw invalid(`rich container: cannot write /${ENV_FILE}: ${errorMessage(err)}`);
  });
  if (mode === 'systemd') {
    if (!(await lexists(path.join(rootfs, 'sbin/init')))) throw invalid(`rich mode systemd needs /sbin/init, which image ${c.Image} does not have`);
    // the command is not run: systemd starts the image's units (and the initscript's)
    proc.args = ['/sbin/init'];
    proc.env = [...proc.env.filter((e) => !e.startsWith('container=')), 'container=sampan'];
    const taken = new Set(mounts.map((m) => m.destination));
    for (const [dest, mode] of [['/run', '755'], ['/run/lock', '1777'], ['/tmp', '1777']] as const) {
      if (!taken.has(dest)) mounts.push({ destination: dest, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', `mode=${mode}`] });
    }
    // cgroup v1: systemd needs its own name=systemd cgroup writable; that hierarchy has no resource controllers,
    // so the container gets no way to change its limits
    const cgroupsPath = (spec.linux as { cgroupsPath?: string } | undefined)?.cgroupsPath;
    if (!isCgroupV2() && cgroupsPath && existsSync('/sys/fs/cgroup/systemd')) {
      mounts.push({ destination: '/sys/fs/cgroup/systemd', type: 'bind', source: `/sys/fs/cgroup/systemd${cgroupsPath}`, options: ['rbind', 'rw', 'nosuid', 'noexec', 'nodev', 'rprivate'] });
    }
    if (c.InitScript) await writeInitUnit(rootfs, c.InitScript);
    return;
  }
  const bin = inits[mode];
  if (!bin) throw invalid(`rich mode ${mode} is not available: ${mode} is not installed on the engine's host (apt-get install ${mode})`);
  if (c.InitScript && !(await lexists(path.join(rootfs, 'bin/sh')))) throw invalid(`the initscript ${c.InitScript} needs /bin/sh, which image ${c.Image} does not have`);
  const cmd = c.InitScript ? ['/bin/sh', '-c', WRAPPER, 'sh', c.InitScript, ...proc.args] : proc.args;
  // tini -g: signals go to the command's whole process group; dumb-init does that by default
  proc.args = [...bindInit(bin, mode, mounts), ...(mode === 'tini' ? ['-g'] : []), '--', ...cmd];
}
