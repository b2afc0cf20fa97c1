import { promises as fs, statSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { invalid } from '../../lib/errors.js';

/** Where Debian's containers-common installs the default seccomp profile. */
export const DEFAULT_SECCOMP_PATH = '/usr/share/containers/seccomp.json';

interface ProfileRule {
  names?: string[];
  name?: string;
  action: string;
  errnoRet?: number;
  args?: Array<{ index: number; value: number; valueTwo?: number; op: string }> | null;
  includes?: { caps?: string[]; arches?: string[]; minKernel?: string };
  excludes?: { caps?: string[]; arches?: string[]; minKernel?: string };
}
export interface SeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: Array<{ architecture: string; subArchitectures?: string[] }>;
  syscalls?: ProfileRule[];
  flags?: string[];
}

let defaultProfile: SeccompProfile | undefined;

/** Load the default profile once (at engine start); false (and a warning) when it is missing. */
export async function loadDefaultSeccomp(log?: { warn: (o: object, m: string) => void }, file = DEFAULT_SECCOMP_PATH): Promise<boolean> {
  try {
    defaultProfile = JSON.parse(await fs.readFile(file, 'utf8')) as SeccompProfile;
    return true;
  } catch (err) {
    defaultProfile = undefined;
    log?.warn({ file, err: (err as Error).message }, 'default seccomp profile not available: containers run without seccomp (apt-get install golang-github-containers-common)');
    return false;
  }
}
export const seccompActive = (): boolean => defaultProfile !== undefined;

// Go's GOARCH names (as in the profile's arches) and the seccomp arch of the host
const NODE_TO_SCMP: Record<string, { goarch: string; scmp: string }> = {
  x64: { goarch: 'amd64', scmp: 'SCMP_ARCH_X86_64' },
  arm64: { goarch: 'arm64', scmp: 'SCMP_ARCH_AARCH64' },
  arm: { goarch: 'arm', scmp: 'SCMP_ARCH_ARM' },
  ppc64: { goarch: 'ppc64le', scmp: 'SCMP_ARCH_PPC64LE' },
  s390x: { goarch: 's390x', scmp: 'SCMP_ARCH_S390X' },
  ia32: { goarch: '386', scmp: 'SCMP_ARCH_X86' },
};
const ARCH_ALIASES: Record<string, string[]> = { amd64: ['amd64', 'x86_64'], '386': ['386', 'x86'], arm64: ['arm64', 'aarch64'] };

function kernelAtLeast(min: string): boolean {
  const cur = os.release().split(/[.-]/).map(Number);
  const want = min.split('.').map(Number);
  for (let i = 0; i < want.length; i++) {
    const c = cur[i] ?? 0;
    const w = want[i] ?? 0;
    if (c !== w) return c > w;
  }
  return true;
}

/** A containers-common/moby profile → the OCI linux.seccomp for a container with these capabilities. */
export function toOciSeccomp(p: SeccompProfile, caps: string[]): Record<string, unknown> {
  const host = NODE_TO_SCMP[process.arch] ?? NODE_TO_SCMP.x64!;
  const hostArches = ARCH_ALIASES[host.goarch] ?? [host.goarch];
  let architectures = p.architectures ?? [];
  if (p.archMap?.length) {
    const m = p.archMap.find((a) => a.architecture === host.scmp);
    architectures = m ? [m.architecture, ...(m.subArchitectures ?? [])] : [];
  }
  const has = new Set(caps);
  const syscalls: Array<Record<string, unknown>> = [];
  for (const r of p.syscalls ?? []) {
    const inc = r.includes ?? {};
    const exc = r.excludes ?? {};
    if (inc.caps?.length && !inc.caps.every((c) => has.has(c))) continue;
    if (inc.arches?.length && !inc.arches.some((a) => hostArches.includes(a))) continue;
    if (inc.minKernel && !kernelAtLeast(inc.minKernel)) continue;
    if (exc.caps?.some((c) => has.has(c))) continue;
    if (exc.arches?.some((a) => hostArches.includes(a))) continue;
    const names = r.names?.length ? r.names : r.name ? [r.name] : [];
    if (!names.length) continue;
    const rule: Record<string, unknown> = { names, action: r.action };
    if (r.errnoRet !== undefined) rule.errnoRet = r.errnoRet;
    if (r.args?.length) rule.args = r.args.map((a) => ({ index: a.index, value: a.value, valueTwo: a.valueTwo ?? 0, op: a.op }));
    syscalls.push(rule);
  }
  const out: Record<string, unknown> = { defaultAction: p.defaultAction, architectures, syscalls };
  if (p.defaultErrnoRet !== undefined) out.defaultErrnoRet = p.defaultErrnoRet;
  if (p.flags?.length) out.flags = p.flags;
  return out;
}

export interface SecurityOpts {
  noNewPrivileges: boolean;
  /** 'default', 'unconfined' or a profile given inline (the CLI sends the file's content). */
  seccomp: 'default' | 'unconfined' | SeccompProfile;
}

/** Docker's --security-opt forms; anything else is an error. */
export function parseSecurityOpts(opts: string[] | null | undefined): SecurityOpts {
  const out: SecurityOpts = { noNewPrivileges: false, seccomp: 'default' };
  for (const o of opts ?? []) {
    if (o === 'no-new-privileges') { out.noNewPrivileges = true; continue; }
    const m = /^([a-z-]+)[=:]([\s\S]*)$/.exec(o);
    if (!m) throw invalid(`Invalid --security-opt: ${JSON.stringify(o)}`);
    const [, key, val] = m as unknown as [string, string, string];
    if (key === 'no-new-privileges') {
      if (val !== 'true' && val !== 'false') throw invalid(`invalid --security-opt 2: ${JSON.stringify(o)}`);
      out.noNewPrivileges = val === 'true';
    } else if (key === 'seccomp') {
      if (val === 'unconfined') out.seccomp = 'unconfined';
      else if (val === 'builtin' || val === 'default' || val === '') out.seccomp = 'default';
      else {
        let p: SeccompProfile;
        try {
          p = JSON.parse(val) as SeccompProfile;
        } catch {
          throw invalid(`Decoding seccomp profile failed: ${val.length > 80 ? 'invalid JSON' : val}`);
        }
        if (!p || typeof p !== 'object' || typeof p.defaultAction !== 'string') throw invalid('Decoding seccomp profile failed: defaultAction is required');
        if (p.syscalls && !Array.isArray(p.syscalls)) throw invalid('Decoding seccomp profile failed: syscalls must be a list');
        out.seccomp = p;
      }
    } else if (key === 'label' || key === 'apparmor') {
      // no LSM on this engine; accept disabling it, refuse anything we would silently ignore
      if (!['disable', 'unconfined'].includes(val)) throw invalid(`--security-opt ${key}=${val} is not supported by this engine (no ${key === 'label' ? 'SELinux' : 'AppArmor'})`);
    } else throw invalid(`Invalid --security-opt: ${JSON.stringify(o)}`);
  }
  return out;
}

/** The linux.seccomp for a container, or undefined for none. */
export function seccompFor(privileged: boolean, opts: SecurityOpts, caps: string[]): Record<string, unknown> | undefined {
  if (privileged || opts.seccomp === 'unconfined') return undefined;
  if (opts.seccomp === 'default') return defaultProfile ? toOciSeccomp(defaultProfile, caps) : undefined;
  return toOciSeccomp(opts.seccomp, caps);
}

// ---------- sysctls ----------

const NS_SYSCTLS = new Set(['kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'kernel.sem', 'kernel.shmall', 'kernel.shmmax', 'kernel.shmmni', 'kernel.shm_rmid_forced']);

/** Docker's rule: only sysctls that are namespaced, and net.* only with a network namespace of the container's own. */
export function validateSysctls(sysctls: Record<string, string> | null | undefined, networkMode: string): void {
  for (const k of Object.keys(sysctls ?? {})) {
    if (NS_SYSCTLS.has(k) || k.startsWith('fs.mqueue.')) continue;
    if (k.startsWith('net.')) {
      if (networkMode === 'host') throw invalid(`sysctl "${k}" not allowed in host network namespace`);
      continue;
    }
    throw invalid(`sysctl "${k}" is not allowed: only namespaced sysctls (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.*) can be set`);
  }
}

// ---------- devices ----------

export interface DeviceMapping { PathOnHost: string; PathInContainer?: string; CgroupPermissions?: string }
export interface OciDevice { path: string; type: string; major: number; minor: number; fileMode: number; uid: number; gid: number }

// glibc's gnu_dev_major/minor on a 64-bit dev_t
const major = (rdev: number) => ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
const minor = (rdev: number) => (rdev & 0xff) | ((rdev >>> 12) & ~0xff);

function deviceOf(hostPath: string, ctrPath: string): OciDevice | undefined {
  const st = statSync(hostPath, { throwIfNoEntry: false });
  if (!st) return undefined;
  const type = st.isCharacterDevice() ? 'c' : st.isBlockDevice() ? 'b' : st.isFIFO() ? 'p' : '';
  if (!type) return undefined;
  return { path: ctrPath, type, major: major(st.rdev), minor: minor(st.rdev), fileMode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
}

/** --device-cgroup-rule "c 1:3 rwm" (type a|b|c, numbers or *, access rwm): device cgroup allow entries. */
export function deviceCgroupRules(rules: string[] | null | undefined): Array<{ allow: true; type: string; major?: number; minor?: number; access: string }> {
  return (rules ?? []).map((r) => {
    const m = /^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$/.exec(String(r));
    if (!m) throw invalid(`invalid device cgroup format '${r}'`);
    const num = (v: string) => (v === '*' ? undefined : Number(v));
    return { allow: true, type: m[1]!, major: num(m[2]!), minor: num(m[3]!), access: m[4]! };
  });
}

/** Check HostConfig.Devices at create: the host device must exist, paths absolute, permissions of r/w/m. */
export function validateDevices(devs: DeviceMapping[] | null | undefined): void {
  for (const d of devs ?? []) {
    if (!d || typeof d.PathOnHost !== 'string' || !d.PathOnHost) throw invalid('device: PathOnHost is required');
    const perms = d.CgroupPermissions || 'rwm';
    if (!/^[rwm]{1,3}$/.test(perms)) throw invalid(`invalid device mode: ${perms}`);
    const ctr = d.PathInContainer || d.PathOnHost;
    if (!ctr.startsWith('/')) throw invalid(`invalid device path in container: ${ctr}`);
    const st = statSync(d.PathOnHost, { throwIfNoEntry: false });
    if (!st) throw invalid(`error gathering device information while adding custom device "${d.PathOnHost}": no such file or directory`);
    if (!st.isDirectory() && !deviceOf(d.PathOnHost, ctr)) throw invalid(`error gathering device information while adding custom device "${d.PathOnHost}": not a device node`);
  }
}

/** linux.devices and the device cgroup rules for the --device mappings (a directory maps every device under it). */
export function userDevices(devs: DeviceMapping[] | null | undefined): { devices: OciDevice[]; allow: Array<Record<string, unknown>> } {
  const devices: OciDevice[] = [];
  const allow: Array<Record<string, unknown>> = [];
  for (const d of devs ?? []) {
    const ctr = d.PathInContainer || d.PathOnHost;
    const access = d.CgroupPermissions || 'rwm';
    const st = statSync(d.PathOnHost, { throwIfNoEntry: false });
    if (!st) throw invalid(`error gathering device information while adding custom device "${d.PathOnHost}": no such file or directory`);
    const pairs: Array<[string, string]> = st.isDirectory() ? walk(d.PathOnHost).map((h) => [h, path.posix.join(ctr, path.posix.relative(d.PathOnHost, h))]) : [[d.PathOnHost, ctr]];
    for (const [h, c] of pairs) {
      const dev = deviceOf(h, c);
      if (!dev) continue;
      devices.push(dev);
      allow.push({ allow: true, type: dev.type, major: dev.major, minor: dev.minor, access });
    }
  }
  return { devices, allow };
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const ent of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) out.push(...walk(p));
    else if (ent.isCharacterDevice() || ent.isBlockDevice()) out.push(p);
  }
  return out;
}

// devices that would clash with the container's own /dev (its pts, console, shm, mqueue)
const SKIP_DIRS = new Set(['/dev/pts', '/dev/shm', '/dev/mqueue', '/dev/fd']);
const SKIP_FILES = new Set(['/dev/console', '/dev/ptmx', '/dev/tty']);

/** Every host device under /dev, as Docker gives a --privileged container. */
export function hostDevices(): OciDevice[] {
  const out: OciDevice[] = [];
  const visit = (dir: string) => {
    let ents;
    try {
      ents = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const ent of ents) {
      const p = path.join(dir, ent.name);
      if (ent.isDirectory()) {
        if (!SKIP_DIRS.has(p)) visit(p);
      } else if ((ent.isCharacterDevice() || ent.isBlockDevice()) && !SKIP_FILES.has(p)) {
        const d = deviceOf(p, p);
        if (d) out.push(d);
      }
    }
  };
  visit('/dev');
  return out;
}
