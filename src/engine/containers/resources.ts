import { promises as fs, existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { invalid } from '../../lib/errors.js';
import type { HostConfig } from './model.js';

/** Cgroup v1 controllers are mounted here on this host (v2 when /sys/fs/cgroup/cgroup.controllers exists). */
export const CGROUP_ROOT = '/sys/fs/cgroup';
const MIN_MEMORY = 6 * 1024 * 1024;
export const PRIORITY_LABELS = ['com.sampan.priority', 'sampan.priority'];

interface ThrottleDevice {
  Path: string;
  Rate: number;
}
interface WeightDevice {
  Path: string;
  Weight: number;
}

/** The resource fields of HostConfig that create and update understand. */
export const RESOURCE_KEYS = [
  'Memory', 'MemorySwap', 'MemoryReservation', 'MemorySwappiness', 'KernelMemory', 'NanoCpus', 'CpuShares', 'CpuPeriod', 'CpuQuota',
  'CpusetCpus', 'CpusetMems', 'PidsLimit', 'BlkioWeight', 'BlkioWeightDevice', 'BlkioDeviceReadBps', 'BlkioDeviceWriteBps',
  'BlkioDeviceReadIOps', 'BlkioDeviceWriteIOps', 'OomKillDisable',
] as const;

export function isCgroupV2(): boolean {
  return existsSync(`${CGROUP_ROOT}/cgroup.controllers`);
}

/** The cgroups path runc gets for a container: HostConfig.CgroupParent (as --cgroup-parent) or the engine's. */
export function cgroupsPathOf(hc: HostConfig, engineParent: string, id: string): string {
  const parent = typeof hc.CgroupParent === 'string' && hc.CgroupParent ? hc.CgroupParent : engineParent;
  return `${parent.startsWith('/') ? '' : '/'}${parent.replace(/\/+$/, '')}/${id}`;
}

/** The directory of one controller's cgroup (v1), or of the unified cgroup (v2). */
export function cgroupDir(controller: string, cgroupsPath: string): string {
  return isCgroupV2() ? `${CGROUP_ROOT}${cgroupsPath}` : `${CGROUP_ROOT}/${controller}${cgroupsPath}`;
}

/** `--priority batch|online` as a label: batch yields to online services on a shared host. */
export function applyPriority(labels: Record<string, string> | null | undefined, hc: HostConfig): void {
  const key = PRIORITY_LABELS.find((k) => labels && k in labels);
  if (!key) return;
  const p = labels![key]!;
  if (p === 'online' || p === '') return;
  if (p !== 'batch') throw invalid(`invalid priority '${p}' (label ${key}): use online or batch`);
  if (!hc.CpuShares) hc.CpuShares = 2;
  if (!hc.OomScoreAdj) hc.OomScoreAdj = 1000;
  if (!hc.BlkioWeight) hc.BlkioWeight = 10;
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

function cpuList(spec: string): number[] {
  const out: number[] = [];
  for (const part of spec.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw invalid(`Invalid value ${spec} for cpuset cpus`);
    const a = Number(m[1]);
    const b = m[2] !== undefined ? Number(m[2]) : a;
    if (b < a) throw invalid(`Invalid value ${spec} for cpuset cpus`);
    for (let i = a; i <= b; i++) out.push(i);
  }
  return out;
}

function readOr(file: string, dflt: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return dflt;
  }
}

/** Docker's checks of the resource settings; returns warnings for settings this host cannot apply. */
export function validateResources(hc: HostConfig): string[] {
  const warnings: string[] = [];
  const mem = num(hc.Memory);
  const swap = num(hc.MemorySwap);
  const resv = num(hc.MemoryReservation);
  if (mem < 0) throw invalid('Invalid value for memory: must not be negative');
  if (mem > 0 && mem < MIN_MEMORY) throw invalid('Minimum memory limit allowed is 6MB');
  if (swap > 0 && mem === 0) throw invalid('You should always set the Memory limit when using Memoryswap limit, see usage');
  if (swap > 0 && swap < mem) throw invalid('Minimum memoryswap limit should be larger than memory limit, see usage');
  if (resv > 0 && resv < MIN_MEMORY) throw invalid('Minimum memory reservation allowed is 6MB');
  if (mem > 0 && resv > 0 && mem < resv) throw invalid('Minimum memory limit can not be less than memory reservation limit, see usage');
  const swappiness = hc.MemorySwappiness;
  if (typeof swappiness === 'number' && swappiness !== -1 && (swappiness < 0 || swappiness > 100)) {
    throw invalid(`Invalid value: ${swappiness}, valid memory swappiness range is 0-100`);
  }
  const ncpu = os.cpus().length || 1;
  const nano = num(hc.NanoCpus);
  if (nano > 0 && num(hc.CpuPeriod) > 0) throw invalid('Conflicting options: Nano CPUs and CPU Period cannot both be set');
  if (nano > 0 && num(hc.CpuQuota) > 0) throw invalid('Conflicting options: Nano CPUs and CPU Quota cannot both be set');
  if (nano < 0 || nano > ncpu * 1e9) throw invalid(`Range of CPUs is from 0.01 to ${ncpu}.00, as there are only ${ncpu} CPUs available`);
  if (nano > 0 && nano < 1e7) throw invalid(`Range of CPUs is from 0.01 to ${ncpu}.00, as there are only ${ncpu} CPUs available`);
  const period = num(hc.CpuPeriod);
  if (period !== 0 && (period < 1000 || period > 1_000_000)) throw invalid('CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)');
  const quota = num(hc.CpuQuota);
  if (quota > 0 && quota < 1000) throw invalid('CPU cfs quota can not be less than 1ms (i.e. 1000)');
  if (num(hc.CpuShares) < 0) throw invalid('Invalid value for CPU shares: must not be negative');
  if (typeof hc.CpusetCpus === 'string' && hc.CpusetCpus) {
    const avail = new Set(cpuList(readOr(`${CGROUP_ROOT}/cpuset/cpuset.cpus`, readOr('/sys/devices/system/cpu/online', `0-${ncpu - 1}`))));
    const bad = cpuList(hc.CpusetCpus).filter((c) => !avail.has(c));
    if (bad.length) throw invalid(`Requested CPUs are not available - requested ${hc.CpusetCpus}, available: ${readOr(`${CGROUP_ROOT}/cpuset/cpuset.cpus`, `0-${ncpu - 1}`)}`);
  }
  if (typeof hc.CpusetMems === 'string' && hc.CpusetMems) {
    const availSpec = readOr(`${CGROUP_ROOT}/cpuset/cpuset.mems`, '0');
    const avail = new Set(cpuList(availSpec));
    if (cpuList(hc.CpusetMems).some((m) => !avail.has(m))) throw invalid(`Requested memory nodes are not available - requested ${hc.CpusetMems}, available: ${availSpec}`);
  }
  const w = num(hc.BlkioWeight);
  if (w !== 0 && (w < 10 || w > 1000)) throw invalid('Range of blkio weight is from 10 to 1000');
  for (const d of (hc.BlkioWeightDevice as WeightDevice[] | null) ?? []) {
    if (d.Weight < 10 || d.Weight > 1000) throw invalid('Range of blkio weight is from 10 to 1000');
  }
  if (w && !blkioWeightSupported()) warnings.push('Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.');
  if (swap > 0 && !swapSupported()) warnings.push('Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.');
  const oom = num(hc.OomScoreAdj);
  if (oom < -1000 || oom > 1000) throw invalid(`Invalid value ${oom}, range for oom score adj is [-1000, 1000]`);
  if (num(hc.ShmSize) < 0) throw invalid('SHM size can not be less than 0');
  return warnings;
}

function blkioWeightSupported(): boolean {
  if (isCgroupV2()) return existsSync(`${CGROUP_ROOT}/cgroup.controllers`) && readOr(`${CGROUP_ROOT}/cgroup.controllers`, '').includes('io');
  return existsSync(`${CGROUP_ROOT}/blkio/blkio.weight`) || existsSync(`${CGROUP_ROOT}/blkio/blkio.bfq.weight`);
}

function swapSupported(): boolean {
  return isCgroupV2() || existsSync(`${CGROUP_ROOT}/memory/memory.memsw.limit_in_bytes`);
}

/** Docker's default: without --memory-swap a memory limit allows as much swap again. */
export function defaultSwap(hc: HostConfig): void {
  if (num(hc.Memory) > 0 && !num(hc.MemorySwap) && swapSupported()) hc.MemorySwap = num(hc.Memory) * 2;
}

async function devNumbers(p: string): Promise<{ major: number; minor: number }> {
  let st;
  try {
    st = await fs.stat(p);
  } catch {
    throw invalid(`invalid device path ${p}: no such device`);
  }
  if (!st.isBlockDevice()) throw invalid(`${p} is not a block device`);
  const rdev = st.rdev;
  return { major: (rdev >> 8) & 0xfff, minor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00) };
}

async function throttle(list: unknown): Promise<Array<{ major: number; minor: number; rate: number }> | undefined> {
  const arr = (list as ThrottleDevice[] | null | undefined) ?? [];
  if (!arr.length) return undefined;
  const out = [];
  for (const d of arr) out.push({ ...(await devNumbers(d.Path)), rate: d.Rate });
  return out;
}

/** The OCI linux.resources (without devices) for a HostConfig. */
export async function ociResources(hc: HostConfig): Promise<Record<string, unknown>> {
  const r: Record<string, unknown> = {};
  const memory: Record<string, unknown> = {};
  if (num(hc.Memory) > 0) memory.limit = num(hc.Memory);
  if (num(hc.MemoryReservation) > 0) memory.reservation = num(hc.MemoryReservation);
  if (swapSupported() && (num(hc.MemorySwap) > 0 || hc.MemorySwap === -1) && num(hc.Memory) > 0) memory.swap = num(hc.MemorySwap);
  if (typeof hc.MemorySwappiness === 'number' && hc.MemorySwappiness >= 0 && !isCgroupV2()) memory.swappiness = hc.MemorySwappiness;
  if (hc.OomKillDisable === true) memory.disableOOMKiller = true;
  if (Object.keys(memory).length) r.memory = memory;
  const cpu: Record<string, unknown> = {};
  if (num(hc.NanoCpus) > 0) {
    cpu.period = 100000;
    cpu.quota = Math.max(1000, Math.round((num(hc.NanoCpus) / 1e9) * 100000));
  } else {
    if (num(hc.CpuPeriod) > 0) cpu.period = num(hc.CpuPeriod);
    if (num(hc.CpuQuota) > 0 || hc.CpuQuota === -1) cpu.quota = num(hc.CpuQuota);
  }
  if (num(hc.CpuShares) > 0) cpu.shares = num(hc.CpuShares);
  if (typeof hc.CpusetCpus === 'string' && hc.CpusetCpus) cpu.cpus = hc.CpusetCpus;
  if (typeof hc.CpusetMems === 'string' && hc.CpusetMems) cpu.mems = hc.CpusetMems;
  if (Object.keys(cpu).length) r.cpu = cpu;
  const pids = hc.PidsLimit;
  if (typeof pids === 'number' && pids !== 0) r.pids = { limit: pids < 0 ? -1 : pids };
  const bio: Record<string, unknown> = {};
  if (num(hc.BlkioWeight) > 0 && blkioWeightSupported()) bio.weight = num(hc.BlkioWeight);
  const rb = await throttle(hc.BlkioDeviceReadBps);
  const wb = await throttle(hc.BlkioDeviceWriteBps);
  const ri = await throttle(hc.BlkioDeviceReadIOps);
  const wi = await throttle(hc.BlkioDeviceWriteIOps);
  if (rb) bio.throttleReadBpsDevice = rb;
  if (wb) bio.throttleWriteBpsDevice = wb;
  if (ri) bio.throttleReadIOPSDevice = ri;
  if (wi) bio.throttleWriteIOPSDevice = wi;
  if (Object.keys(bio).length) r.blockIO = bio;
  return r;
}

const RLIMIT_NAMES: Record<string, string> = {
  core: 'Max core file size', cpu: 'Max cpu time', data: 'Max data size', fsize: 'Max file size', locks: 'Max file locks',
  memlock: 'Max locked memory', msgqueue: 'Max msgqueue size', nice: 'Max nice priority', nofile: 'Max open files', nproc: 'Max processes',
  rss: 'Max resident set', rtprio: 'Max realtime priority', rttime: 'Max realtime timeout', sigpending: 'Max pending signals', stack: 'Max stack size', as: 'Max address space',
};

/** The host's hard limits, as getrlimit reports them (from /proc/self/limits); Infinity for unlimited. */
export async function hostHardLimits(): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const text = await fs.readFile('/proc/self/limits', 'utf8').catch(() => '');
  for (const [name, label] of Object.entries(RLIMIT_NAMES)) {
    const line = text.split('\n').find((l) => l.startsWith(label));
    if (!line) continue;
    const f = line.slice(label.length).trim().split(/\s+/);
    const hard = f[1];
    out.set(name, hard === 'unlimited' || hard === undefined ? Infinity : Number(hard));
  }
  return out;
}

/** OCI rlimits for --ulimit, checked against what this engine may grant (it lacks CAP_SYS_RESOURCE). */
export async function ociRlimits(hc: HostConfig): Promise<Array<{ type: string; hard: number; soft: number }>> {
  const list = hc.Ulimits ?? [];
  if (!list.length) return [];
  const hard = await hostHardLimits();
  const out = [];
  for (const u of list) {
    const name = u.Name.toLowerCase();
    if (!(name in RLIMIT_NAMES)) throw invalid(`invalid ulimit type: ${u.Name}`);
    // RLIM_INFINITY (2^64-1) has no exact JSON number, and this engine could not grant it anyway
    if (u.Soft < 0 || u.Hard < 0) throw invalid(`invalid ulimit ${name}=${u.Soft}:${u.Hard}: unlimited (-1) is not supported, give a number within this host's hard limit`);
    if (u.Soft > u.Hard) throw invalid(`invalid ulimit argument: soft limit ${u.Soft} is larger than hard limit ${u.Hard}`);
    const max = hard.get(name) ?? Infinity;
    if (u.Hard > max) {
      throw invalid(`invalid ulimit ${name}=${u.Soft}:${u.Hard}: the hard limit is above this host's hard limit ${max} (the engine cannot raise it without CAP_SYS_RESOURCE)`);
    }
    out.push({ type: `RLIMIT_${name.toUpperCase()}`, hard: u.Hard, soft: u.Soft });
  }
  return out;
}

/** Check --ulimit at create, so a bad one is a 400 then and not a failed start. */
export async function validateUlimits(hc: HostConfig): Promise<void> {
  await ociRlimits(hc);
}

/** Merge a `docker update` body into a HostConfig; returns the new HostConfig (the old one is left alone). */
export function mergeUpdate(hc: HostConfig, body: Record<string, unknown>): HostConfig {
  const next: HostConfig = { ...hc };
  for (const k of RESOURCE_KEYS) {
    const v = body[k];
    if (v === undefined || v === null) continue;
    // the CLI sends zero for what was not given
    if ((typeof v === 'number' && v === 0) || (typeof v === 'string' && v === '') || (Array.isArray(v) && v.length === 0)) continue;
    (next as Record<string, unknown>)[k] = v;
  }
  if (typeof body.Memory === 'number' && body.Memory > 0) {
    const swap = num(next.MemorySwap);
    const swapGiven = typeof body.MemorySwap === 'number' && body.MemorySwap !== 0;
    if (!swapGiven && swap > 0 && swap < body.Memory) next.MemorySwap = body.Memory * 2;
  }
  if (num(body.NanoCpus) > 0) {
    next.CpuPeriod = 0;
    next.CpuQuota = 0;
  } else if (num(body.CpuQuota) !== 0 || num(body.CpuPeriod) > 0) next.NanoCpus = 0;
  const rp = body.RestartPolicy as { Name?: string; MaximumRetryCount?: number } | undefined;
  if (rp && rp.Name) {
    if (hc.AutoRemove && rp.Name !== 'no') throw invalid('Restart policy cannot be updated because AutoRemove is enabled for the container');
    if (!['no', 'always', 'on-failure', 'unless-stopped'].includes(rp.Name)) throw invalid(`invalid restart policy: unknown policy '${rp.Name}'`);
    if ((rp.MaximumRetryCount ?? 0) > 0 && rp.Name !== 'on-failure') throw invalid(`invalid restart policy: maximum retry count can only be used with 'on-failure'`);
    next.RestartPolicy = { Name: rp.Name as HostConfig['RestartPolicy']['Name'], MaximumRetryCount: rp.MaximumRetryCount ?? 0 };
  }
  return next;
}

/** What `runc update --resources -` gets: the full resource set, so limits can be raised and lowered. */
export async function updateResources(hc: HostConfig): Promise<Record<string, unknown>> {
  const r = await ociResources(hc);
  const mem = (r.memory ?? {}) as Record<string, unknown>;
  if (mem.limit && mem.swap === undefined && swapSupported()) mem.swap = -1;
  if (Object.keys(mem).length) r.memory = mem;
  return r;
}

/** Did the kernel OOM-kill a process of this container (cgroup v1 memory.oom_control, v2 memory.events)? */
export async function oomKillCount(cgroupsPath: string): Promise<number> {
  const file = isCgroupV2() ? `${CGROUP_ROOT}${cgroupsPath}/memory.events` : `${CGROUP_ROOT}/memory${cgroupsPath}/memory.oom_control`;
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  const m = /^oom_kill (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

/** At create: the priority preset, Docker's checks and defaults; returns Docker's warnings. */
export async function checkResources(labels: Record<string, string> | null | undefined, hc: HostConfig): Promise<string[]> {
  applyPriority(labels, hc);
  const warnings = validateResources(hc);
  defaultSwap(hc);
  await validateUlimits(hc);
  return warnings;
}
