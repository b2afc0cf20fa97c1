import { promises as fs } from 'node:fs';
import os from 'node:os';
import { cgroupDir, isCgroupV2 } from './resources.js';

const TICK_NS = 1e9 / 100; // USER_HZ is 100 on Linux
const ZERO_TIME = '0001-01-01T00:00:00Z';

async function read(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
}

async function readNum(file: string): Promise<number | undefined> {
  const t = await read(file);
  if (t === undefined) return undefined;
  const v = t.trim();
  if (v === 'max') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

function kv(text: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of (text ?? '').split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out[k] = Number(v);
  }
  return out;
}

export interface CpuStats {
  cpu_usage: { total_usage: number; percpu_usage?: number[]; usage_in_kernelmode: number; usage_in_usermode: number };
  system_cpu_usage?: number;
  online_cpus?: number;
  throttling_data: { periods: number; throttled_periods: number; throttled_time: number };
}

/** The host's CPU time in ns (Docker's system_cpu_usage) and how many CPUs are online, from /proc/stat. */
async function systemCpu(): Promise<{ usage: number; online: number }> {
  const text = (await read('/proc/stat')) ?? '';
  let usage = 0;
  let online = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('cpu ')) {
      const f = line.split(/\s+/).slice(1, 8).map(Number);
      usage = f.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0) * TICK_NS;
    } else if (/^cpu\d+ /.test(line)) online++;
  }
  return { usage, online: online || os.cpus().length };
}

async function cpuStats(cg: string): Promise<CpuStats> {
  const sys = await systemCpu();
  if (isCgroupV2()) {
    const st = kv(await read(`${cgroupDir('', cg)}/cpu.stat`));
    return {
      cpu_usage: { total_usage: (st.usage_usec ?? 0) * 1000, usage_in_kernelmode: (st.system_usec ?? 0) * 1000, usage_in_usermode: (st.user_usec ?? 0) * 1000 },
      system_cpu_usage: sys.usage,
      online_cpus: sys.online,
      throttling_data: { periods: st.nr_periods ?? 0, throttled_periods: st.nr_throttled ?? 0, throttled_time: (st.throttled_usec ?? 0) * 1000 },
    };
  }
  const acct = cgroupDir('cpuacct', cg);
  const total = (await readNum(`${acct}/cpuacct.usage`)) ?? 0;
  const percpu = ((await read(`${acct}/cpuacct.usage_percpu`)) ?? '').trim().split(/\s+/).filter(Boolean).map(Number);
  const us = kv(await read(`${acct}/cpuacct.stat`));
  const thr = kv(await read(`${cgroupDir('cpu', cg)}/cpu.stat`));
  return {
    cpu_usage: { total_usage: total, percpu_usage: percpu.length ? percpu : undefined, usage_in_kernelmode: (us.system ?? 0) * TICK_NS, usage_in_usermode: (us.user ?? 0) * TICK_NS },
    system_cpu_usage: sys.usage,
    online_cpus: sys.online,
    throttling_data: { periods: thr.nr_periods ?? 0, throttled_periods: thr.nr_throttled ?? 0, throttled_time: thr.throttled_time ?? 0 },
  };
}

async function memoryStats(cg: string): Promise<Record<string, unknown>> {
  const hostMem = os.totalmem();
  if (isCgroupV2()) {
    const d = cgroupDir('', cg);
    const limit = await readNum(`${d}/memory.max`);
    return { usage: (await readNum(`${d}/memory.current`)) ?? 0, stats: kv(await read(`${d}/memory.stat`)), limit: limit && limit < hostMem ? limit : hostMem };
  }
  const d = cgroupDir('memory', cg);
  const usage = await readNum(`${d}/memory.usage_in_bytes`);
  if (usage === undefined) return {};
  const limit = (await readNum(`${d}/memory.limit_in_bytes`)) ?? hostMem;
  return {
    usage,
    max_usage: (await readNum(`${d}/memory.max_usage_in_bytes`)) ?? 0,
    stats: kv(await read(`${d}/memory.stat`)),
    failcnt: (await readNum(`${d}/memory.failcnt`)) ?? 0,
    limit: Math.min(limit, hostMem),
  };
}

async function blkioStats(cg: string): Promise<Record<string, unknown>> {
  const parse = (text: string | undefined) => {
    const out: Array<{ major: number; minor: number; op: string; value: number }> = [];
    for (const line of (text ?? '').split('\n')) {
      const m = /^(\d+):(\d+) (\w+) (\d+)$/.exec(line.trim());
      if (m) out.push({ major: Number(m[1]), minor: Number(m[2]), op: m[3]!, value: Number(m[4]) });
    }
    return out;
  };
  const empty = { io_service_bytes_recursive: null, io_serviced_recursive: null, io_queue_recursive: null, io_service_time_recursive: null, io_wait_time_recursive: null, io_merged_recursive: null, io_time_recursive: null, sectors_recursive: null };
  if (isCgroupV2()) {
    const bytes: Array<{ major: number; minor: number; op: string; value: number }> = [];
    const ios: typeof bytes = [];
    for (const line of ((await read(`${cgroupDir('', cg)}/io.stat`)) ?? '').split('\n')) {
      const m = /^(\d+):(\d+) (.*)$/.exec(line.trim());
      if (!m) continue;
      const f = kv(m[3]!.replace(/=/g, ' ').replace(/(\w+ \d+) /g, '$1\n'));
      const [major, minor] = [Number(m[1]), Number(m[2])];
      bytes.push({ major, minor, op: 'read', value: f.rbytes ?? 0 }, { major, minor, op: 'write', value: f.wbytes ?? 0 });
      ios.push({ major, minor, op: 'read', value: f.rios ?? 0 }, { major, minor, op: 'write', value: f.wios ?? 0 });
    }
    return { ...empty, io_service_bytes_recursive: bytes, io_serviced_recursive: ios };
  }
  const d = cgroupDir('blkio', cg);
  const bytes = parse(await read(`${d}/blkio.throttle.io_service_bytes_recursive`)) ;
  const ios = parse(await read(`${d}/blkio.throttle.io_serviced_recursive`));
  return { ...empty, io_service_bytes_recursive: bytes, io_serviced_recursive: ios };
}

async function pidsStats(cg: string): Promise<Record<string, number>> {
  const d = isCgroupV2() ? cgroupDir('', cg) : cgroupDir('pids', cg);
  const current = await readNum(`${d}/pids.current`);
  const limit = await readNum(`${d}/pids.max`);
  const out: Record<string, number> = {};
  if (current !== undefined) out.current = current;
  if (limit !== undefined) out.limit = limit;
  return out;
}

/** Interface counters of the container's network namespace (seen through its init's /proc/<pid>/net/dev). */
async function networkStats(pid: number): Promise<Record<string, Record<string, number>> | undefined> {
  if (!pid) return undefined;
  const text = await read(`/proc/${pid}/net/dev`);
  if (!text) return undefined;
  const out: Record<string, Record<string, number>> = {};
  for (const line of text.split('\n').slice(2)) {
    const i = line.indexOf(':');
    if (i < 0) continue;
    const name = line.slice(0, i).trim();
    if (name === 'lo') continue;
    const f = line.slice(i + 1).trim().split(/\s+/).map(Number);
    out[name] = { rx_bytes: f[0]!, rx_packets: f[1]!, rx_errors: f[2]!, rx_dropped: f[3]!, tx_bytes: f[8]!, tx_packets: f[9]!, tx_errors: f[10]!, tx_dropped: f[11]! };
  }
  return Object.keys(out).length ? out : undefined;
}

export interface StatsSample {
  read: string;
  cpu_stats: CpuStats;
  [k: string]: unknown;
}

const emptyCpu = (): CpuStats => ({ cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 }, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } });

/** One sample of Docker's stats JSON for a container; prev fills preread and precpu_stats. */
export async function sampleStats(o: { id: string; name: string; cgroupsPath: string; pid: number; running: boolean }, prev?: StatsSample): Promise<StatsSample> {
  if (!o.running) {
    return {
      read: ZERO_TIME, preread: ZERO_TIME, pids_stats: {}, blkio_stats: await blkioStats('/nonexistent'), num_procs: 0, storage_stats: {},
      cpu_stats: emptyCpu(), precpu_stats: emptyCpu(), memory_stats: {}, name: `/${o.name}`, id: o.id,
    };
  }
  const [cpu, memory, blkio, pids, networks] = await Promise.all([cpuStats(o.cgroupsPath), memoryStats(o.cgroupsPath), blkioStats(o.cgroupsPath), pidsStats(o.cgroupsPath), networkStats(o.pid)]);
  const s: StatsSample = {
    read: new Date().toISOString(),
    preread: prev?.read ?? ZERO_TIME,
    pids_stats: pids,
    blkio_stats: blkio,
    num_procs: 0,
    storage_stats: {},
    cpu_stats: cpu,
    precpu_stats: prev?.cpu_stats ?? emptyCpu(),
    memory_stats: memory,
    name: `/${o.name}`,
    id: o.id,
  };
  if (networks) s.networks = networks;
  return s;
}
