import os from 'node:os';
import path from 'node:path';
import type { Image } from '../images/store.js';
import { invalid } from '../../lib/errors.js';
import { overlayEnv } from './parse.js';
import type { ContainerConfig, HostConfig, MountSpec, RestartPolicy } from './model.js';
import type { CreateBody } from './validate.js';
import { quotaSize } from '../quota/quota.js';
import { richConfig } from './rich.js';
import { normalizeLogConfig, type LogConfig } from './logconfig.js';
import { mergeHealthcheck } from './healthcheck.js';
import { deviceCgroupRules, parseSecurityOpts, validateDevices, validateSysctls, type DeviceMapping } from './security.js';

const toArr = (v: string[] | string | null | undefined): string[] | null => (v == null ? null : Array.isArray(v) ? v : [v]);

/** Docker's merge of a create request with its image's config. */
export function mergeConfig(body: CreateBody, image: Image, id: string): { config: ContainerConfig; path: string; args: string[] } {
  const ic = image.config.config ?? {};
  let entrypoint = toArr(body.Entrypoint);
  let cmd = toArr(body.Cmd);
  if (entrypoint && entrypoint.length === 1 && entrypoint[0] === '') entrypoint = [];
  if (!entrypoint || entrypoint.length === 0) {
    if (!cmd || cmd.length === 0) cmd = ic.Cmd ?? null;
    if (!entrypoint) entrypoint = ic.Entrypoint ?? null;
  }
  const argv = [...(entrypoint ?? []), ...(cmd ?? [])];
  if (argv.length === 0) throw invalid('no command specified');
  const utsHost = (body.HostConfig as { UTSMode?: string } | null | undefined)?.UTSMode === 'host';
  if (utsHost && body.Hostname) throw invalid('Conflicting options: hostname and the UTS mode');
  const mac = (body as { MacAddress?: string }).MacAddress;
  const config: ContainerConfig = {
    // sharing the host's UTS namespace, the container has the host's name
    Hostname: utsHost ? os.hostname() : body.Hostname || id.slice(0, 12),
    Domainname: body.Domainname ?? '',
    ...(mac ? { MacAddress: mac } : {}),
    User: body.User || ic.User || '',
    AttachStdin: !!body.AttachStdin,
    AttachStdout: !!body.AttachStdout,
    AttachStderr: !!body.AttachStderr,
    ExposedPorts: { ...(ic.ExposedPorts ?? {}), ...(body.ExposedPorts ?? {}) },
    Tty: !!body.Tty,
    OpenStdin: !!body.OpenStdin,
    StdinOnce: !!body.StdinOnce,
    Env: overlayEnv(body.Env, ic.Env),
    Cmd: cmd,
    Healthcheck: mergeHealthcheck(body.Healthcheck as ContainerConfig['Healthcheck'], ic.Healthcheck),
    Image: body.Image,
    Volumes: { ...(ic.Volumes ?? {}), ...(body.Volumes ?? {}) },
    WorkingDir: body.WorkingDir || ic.WorkingDir || '',
    Entrypoint: entrypoint,
    OnBuild: null,
    Labels: { ...(ic.Labels ?? {}), ...(body.Labels ?? {}) },
    StopSignal: body.StopSignal || ic.StopSignal || undefined,
    StopTimeout: body.StopTimeout ?? undefined,
  };
  if (config.ExposedPorts && !Object.keys(config.ExposedPorts).length) delete config.ExposedPorts;
  Object.assign(config, richConfig(body, config));
  if (config.WorkingDir && !path.posix.isAbsolute(config.WorkingDir)) throw invalid(`the working directory '${config.WorkingDir}' is invalid, it needs to be an absolute path`);
  return { config, path: argv[0]!, args: argv.slice(1) };
}

const POLICIES = new Set(['', 'no', 'always', 'on-failure', 'unless-stopped']);

/** HostConfig with Docker's defaults filled in and its rules checked. */
export function normalizeHostConfig(hc: Record<string, unknown> | null | undefined): HostConfig {
  const h = { ...(hc ?? {}) } as Partial<HostConfig> & Record<string, unknown>;
  const rp = (h.RestartPolicy ?? { Name: 'no', MaximumRetryCount: 0 }) as RestartPolicy;
  const policy: RestartPolicy = { Name: (rp.Name || 'no') as RestartPolicy['Name'], MaximumRetryCount: rp.MaximumRetryCount ?? 0 };
  if (!POLICIES.has(policy.Name)) throw invalid(`invalid restart policy: unknown policy '${policy.Name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'`);
  if (policy.MaximumRetryCount < 0) throw invalid('invalid restart policy: maximum retry count cannot be negative');
  if (policy.MaximumRetryCount > 0 && policy.Name !== 'on-failure') throw invalid(`invalid restart policy: maximum retry count can only be used with 'on-failure'`);
  if (h.AutoRemove && policy.Name !== 'no' && policy.Name !== '') throw invalid('can\'t create \'AutoRemove\' container with restart policy');
  quotaSize(h.StorageOpt, 'storage-opt');
  const nm = (h.NetworkMode as string) || 'default';
  parseSecurityOpts(h.SecurityOpt as string[] | null);
  validateSysctls(h.Sysctls as Record<string, string> | null, nm);
  validateDevices(h.Devices as DeviceMapping[] | null);
  deviceCgroupRules(h.DeviceCgroupRules as string[] | null);
  const mode = (v: unknown, what: string, allowed: string[], joinable: boolean): string => {
    const m = typeof v === 'string' ? v : '';
    if (allowed.includes(m) || (joinable && /^container:.+/.test(m))) return m;
    throw invalid(`invalid ${what} mode: ${JSON.stringify(m)}`);
  };
  const usernsMode = mode(h.UsernsMode, 'user namespace', ['', 'host'], false);
  // the one OCI runtime, as `docker info` lists it
  if (h.Runtime && h.Runtime !== 'runc') throw invalid(`unknown or invalid runtime name: ${String(h.Runtime)}`);
  // user networks are checked by the network service at create
  return {
    ...h,
    Binds: (h.Binds as string[] | null) ?? null,
    NetworkMode: nm,
    PortBindings: h.PortBindings ?? {},
    RestartPolicy: policy,
    AutoRemove: !!h.AutoRemove,
    VolumeDriver: (h.VolumeDriver as string) ?? '',
    VolumesFrom: h.VolumesFrom ?? null,
    CapAdd: h.CapAdd ?? null,
    CapDrop: h.CapDrop ?? null,
    Dns: h.Dns ?? [],
    DnsOptions: h.DnsOptions ?? [],
    DnsSearch: h.DnsSearch ?? [],
    ExtraHosts: h.ExtraHosts ?? null,
    Privileged: !!h.Privileged,
    ReadonlyRootfs: !!h.ReadonlyRootfs,
    SecurityOpt: h.SecurityOpt ?? null,
    Tmpfs: h.Tmpfs ?? undefined,
    ShmSize: h.ShmSize || 67108864,
    Init: h.Init ?? null,
    Mounts: (h.Mounts as MountSpec[]) ?? undefined,
    Memory: h.Memory ?? 0,
    NanoCpus: h.NanoCpus ?? 0,
    CpuShares: h.CpuShares ?? 0,
    PidsLimit: h.PidsLimit ?? null,
    Ulimits: h.Ulimits ?? null,
    OomScoreAdj: h.OomScoreAdj ?? 0,
    Sysctls: h.Sysctls ?? undefined,
    LogConfig: normalizeLogConfig(h.LogConfig as LogConfig | undefined),
    PidMode: mode(h.PidMode, 'PID', ['', 'host'], true),
    // Docker's default IPC mode: a namespace of the container's own that others cannot join
    IpcMode: mode(h.IpcMode, 'IPC', ['', 'private', 'shareable', 'none', 'host'], true) || 'private',
    UTSMode: mode(h.UTSMode, 'UTS', ['', 'host'], false),
    CgroupnsMode: mode(h.CgroupnsMode, 'cgroup namespace', ['', 'host', 'private'], false) || 'host',
    UsernsMode: usernsMode,
    Runtime: 'runc',
    GroupAdd: (h.GroupAdd as string[] | null) ?? null,
  };
}

export interface ParsedBind {
  source: string; // host path or volume name
  target: string;
  isVolume: boolean;
  readOnly: boolean;
  propagation: string;
  noCopy: boolean;
}

/** "src:dst[:opts]" or "dst" (an anonymous volume) as `-v` sends it. */
export function parseBind(spec: string): ParsedBind {
  const parts = spec.split(':');
  let src = '';
  let dst: string;
  let opts = '';
  if (parts.length === 1) dst = parts[0]!;
  else if (parts.length === 2) {
    if (parts[1]!.startsWith('/')) [src, dst] = parts as [string, string];
    else [dst, opts] = parts as [string, string];
  } else if (parts.length === 3) [src, dst, opts] = parts as [string, string, string];
  else throw invalid(`invalid volume specification: '${spec}'`);
  if (!dst || !dst.startsWith('/')) throw invalid(`invalid volume specification: '${spec}': the mount destination must be an absolute path`);
  if (dst === '/') throw invalid(`invalid volume specification: '${spec}': destination can't be '/'`);
  let readOnly = false;
  let propagation = '';
  let noCopy = false;
  for (const o of opts ? opts.split(',') : []) {
    if (o === 'ro') readOnly = true;
    else if (o === 'rw') readOnly = false;
    else if (['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave'].includes(o)) propagation = o;
    else if (o === 'nocopy') noCopy = true;
    else if (o === 'z' || o === 'Z' || o === 'consistent' || o === 'cached' || o === 'delegated') continue;
    else throw invalid(`invalid mode: ${o}`);
  }
  const isVolume = src !== '' && !src.startsWith('/');
  return { source: src, target: path.posix.normalize(dst), isVolume: isVolume || src === '', readOnly, propagation, noCopy };
}
