import { promises as fs } from 'node:fs';
import type { ContainerRecord, MountPoint } from './model.js';
import type { ResolvedUser } from './user.js';
import { invalid } from '../../lib/errors.js';
import { ociResources, ociRlimits } from './resources.js';
import { deviceCgroupRules, hostDevices, parseSecurityOpts, seccompFor, userDevices, type DeviceMapping } from './security.js';

/** Docker's default capability set. */
export const DEFAULT_CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE'];

const ALL_CAPS = ['CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP', 'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER', 'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE', 'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP', 'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF', 'CHECKPOINT_RESTORE'];

const MASKED = ['/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap'];
const READONLY = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

let lastCap: number | undefined;
let ownBounding: bigint | undefined;
async function hostCaps(): Promise<string[]> {
  if (lastCap === undefined) {
    lastCap = Number((await fs.readFile('/proc/sys/kernel/cap_last_cap', 'utf8').catch(() => '40')).trim());
    // only what the engine itself holds can be given (an engine in a container may lack some)
    const bnd = /^CapBnd:\s*([0-9a-f]+)$/m.exec(await fs.readFile('/proc/self/status', 'utf8').catch(() => ''));
    ownBounding = bnd ? BigInt('0x' + bnd[1]) : undefined;
  }
  return ALL_CAPS.slice(0, lastCap + 1).filter((_, i) => ownBounding === undefined || ((ownBounding >> BigInt(i)) & 1n) === 1n).map((c) => `CAP_${c}`);
}

function normCap(c: string): string {
  const up = c.toUpperCase();
  return up.startsWith('CAP_') ? up : `CAP_${up}`;
}

export async function capabilities(rec: ContainerRecord): Promise<string[]> {
  const all = await hostCaps();
  if (rec.HostConfig.Privileged) return all;
  let caps = new Set(DEFAULT_CAPS);
  for (const c of rec.HostConfig.CapAdd ?? []) {
    if (c.toUpperCase() === 'ALL') caps = new Set(all);
    else if (!all.includes(normCap(c))) throw invalid(`invalid capability: ${c}`);
    else caps.add(normCap(c));
  }
  for (const c of rec.HostConfig.CapDrop ?? []) {
    if (c.toUpperCase() === 'ALL') caps.clear();
    else caps.delete(normCap(c));
  }
  return [...caps];
}

const SIGNALS: Record<string, number> = { HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10, SEGV: 11, USR2: 12, PIPE: 13, ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19, TSTP: 20, TTIN: 21, TTOU: 22, URG: 23, XCPU: 24, XFSZ: 25, VTALRM: 26, PROF: 27, WINCH: 28, IO: 29, PWR: 30, SYS: 31 };

/** "SIGTERM", "TERM", "15", "SIGRTMIN+3" → signal number. */
export function parseSignal(s: string | undefined, dflt = 15): number {
  if (!s) return dflt;
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n < 1 || n > 64) throw invalid(`invalid signal: ${s}`);
    return n;
  }
  const name = s.toUpperCase().replace(/^SIG/, '');
  const rt = /^RTMIN(?:\+(\d+))?$/.exec(name);
  if (rt) return 34 + Number(rt[1] ?? 0);
  const n = SIGNALS[name];
  if (!n) throw invalid(`invalid signal: ${s}`);
  return n;
}

export interface SpecInputs {
  rootfs: string;
  user: ResolvedUser;
  env: string[];
  args: string[];
  mounts: MountPoint[];
  /** Files the engine writes for the container (hosts, hostname, resolv.conf). */
  etcFiles: { hosts: string; hostname: string; resolvConf: string };
  /** Path of a network namespace to join, or 'host', or undefined for a new one. */
  netns?: string;
  /** The same for the PID and IPC namespaces; with a joined IPC namespace, the /dev/shm to bind. */
  pidns?: string;
  ipcns?: string;
  shmSource?: string;
  initBinary?: string;
  cgroupsPath: string;
  /** Read-only binds the engine adds (the LXCFS views of /proc and /sys files). */
  extraBinds?: Array<{ source: string; destination: string }>;
}

/** The OCI runtime spec for a container, following Docker's defaults. */
export async function buildSpec(rec: ContainerRecord, x: SpecInputs): Promise<Record<string, unknown>> {
  const hc = rec.HostConfig;
  const caps = await capabilities(rec);
  const args = hc.Init ? [x.initBinary ? '/sbin/docker-init' : '', '--', ...x.args].filter(Boolean) : x.args;
  const shmSize = hc.ShmSize || 64 * 1024 * 1024;
  const mounts: Array<Record<string, unknown>> = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', hc.Privileged ? 'rw' : 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', hc.Privileged ? 'rw' : 'ro'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
  ];
  if (x.shmSource) mounts.push({ destination: '/dev/shm', type: 'bind', source: x.shmSource, options: ['rbind', 'rprivate'] });
  else if (hc.IpcMode !== 'none') mounts.push({ destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${shmSize}`] });
  const userDest = new Set(x.mounts.map((m) => m.Destination));
  const etc: Array<[string, string]> = [['/etc/resolv.conf', x.etcFiles.resolvConf], ['/etc/hostname', x.etcFiles.hostname], ['/etc/hosts', x.etcFiles.hosts]];
  for (const [dest, src] of etc) {
    if (!userDest.has(dest)) mounts.push({ destination: dest, type: 'bind', source: src, options: ['rbind', 'rprivate', hc.ReadonlyRootfs ? 'ro' : 'rw'] });
  }
  for (const m of x.mounts) {
    if (m.Type === 'tmpfs') {
      mounts.push({ destination: m.Destination, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'noexec', ...(m.TmpfsOptions ? m.TmpfsOptions.split(',') : [])].filter(Boolean) });
    } else {
      const prop = m.Propagation || 'rprivate';
      mounts.push({ destination: m.Destination, type: 'bind', source: m.Source, options: ['rbind', prop, m.RW ? 'rw' : 'ro'] });
    }
  }
  for (const b of x.extraBinds ?? []) if (!userDest.has(b.destination)) mounts.push({ destination: b.destination, type: 'bind', source: b.source, options: ['rbind', 'rprivate', 'ro'] });
  if (hc.Init && x.initBinary) mounts.push({ destination: '/sbin/docker-init', type: 'bind', source: x.initBinary, options: ['rbind', 'ro', 'rprivate'] });

  // a namespace of its own, one joined by path, or none at all for the host's
  const ns = (type: string, join: string | undefined): Array<Record<string, string>> => (join === 'host' ? [] : [join ? { type, path: join } : { type }]);
  const utsHost = hc.UTSMode === 'host';
  const namespaces: Array<Record<string, string>> = [...ns('pid', x.pidns), ...ns('ipc', x.ipcns), ...ns('uts', utsHost ? 'host' : undefined), { type: 'mount' }, ...ns('network', x.netns)];
  if (hc.CgroupnsMode === 'private') namespaces.push({ type: 'cgroup' });

  const rlimits = await ociRlimits(hc);
  // runc before 1.2 has no OCI domainname: the UTS namespace's sysctl sets it the same way
  const sysctls = { ...(rec.Config.Domainname && !utsHost && x.netns !== 'host' ? { 'kernel.domainname': rec.Config.Domainname } : {}), ...(hc.Sysctls ?? {}) };
  const secOpts = parseSecurityOpts(hc.SecurityOpt);
  const user = userDevices((hc as { Devices?: DeviceMapping[] | null }).Devices);
  const devices = hc.Privileged ? mergeDevices(hostDevices(), user.devices) : user.devices;
  const resources: Record<string, unknown> = {
    devices: hc.Privileged ? [{ allow: true, access: 'rwm' }] : [{ allow: false, access: 'rwm' }, ...user.allow, ...deviceCgroupRules(hc.DeviceCgroupRules)] /* runc appends its default allow list */,
    ...(await ociResources(hc)),
  };

  const process: Record<string, unknown> = {
    terminal: rec.Config.Tty,
    user: { uid: x.user.uid, gid: x.user.gid, additionalGids: x.user.additionalGids.length ? x.user.additionalGids : undefined },
    args,
    env: x.env,
    cwd: rec.Config.WorkingDir || '/',
    capabilities: { bounding: caps, effective: caps, permitted: caps },
    noNewPrivileges: secOpts.noNewPrivileges,
    rlimits: rlimits.length ? rlimits : undefined,
    oomScoreAdj: hc.OomScoreAdj || undefined,
  };
  if (rec.Config.Tty) process.consoleSize = consoleSize(rec.HostConfig.ConsoleSize);

  return {
    ociVersion: '1.0.2',
    process,
    root: { path: x.rootfs, readonly: !!hc.ReadonlyRootfs },
    hostname: x.netns === 'host' || utsHost ? undefined : rec.Config.Hostname,
    mounts,
    linux: {
      namespaces,
      cgroupsPath: x.cgroupsPath,
      resources,
      devices: devices.length ? devices : undefined,
      seccomp: seccompFor(!!hc.Privileged, secOpts, caps),
      sysctl: Object.keys(sysctls).length ? sysctls : undefined,
      maskedPaths: hc.Privileged ? [] : MASKED,
      readonlyPaths: hc.Privileged ? [] : READONLY,
    },
  };
}

/** Host devices first, a --device mapping replaces one at the same path. */
function mergeDevices(host: Array<{ path: string }>, user: Array<{ path: string }>) {
  const byPath = new Map(host.map((d) => [d.path, d]));
  for (const d of user) byPath.set(d.path, d);
  return [...byPath.values()];
}

function consoleSize(v: unknown): { height: number; width: number } {
  const [h, w] = Array.isArray(v) ? (v as number[]) : [];
  return { height: h && h > 0 ? h : 24, width: w && w > 0 ? w : 80 };
}

/** The process spec for an exec session inside a running container. */
/** An exec session's process: like Docker's, it starts from the container's (capabilities, rlimits, OOM score). */
export async function buildExecProcess(
  rec: ContainerRecord,
  o: { args: string[]; env: string[]; cwd: string; user: ResolvedUser; tty: boolean; privileged: boolean; consoleSize?: unknown },
  caps: string[],
  allCaps: string[],
): Promise<Record<string, unknown>> {
  const c = o.privileged ? allCaps : caps;
  const rlimits = await ociRlimits(rec.HostConfig);
  return {
    terminal: o.tty,
    consoleSize: o.tty ? consoleSize(o.consoleSize) : undefined,
    user: { uid: o.user.uid, gid: o.user.gid, additionalGids: o.user.additionalGids.length ? o.user.additionalGids : undefined },
    args: o.args,
    env: o.env,
    cwd: o.cwd || rec.Config.WorkingDir || '/',
    capabilities: { bounding: c, effective: c, permitted: c },
    noNewPrivileges: parseSecurityOpts(rec.HostConfig.SecurityOpt).noNewPrivileges,
    rlimits: rlimits.length ? rlimits : undefined,
    oomScoreAdj: rec.HostConfig.OomScoreAdj || undefined,
  };
}

export { hostCaps };
