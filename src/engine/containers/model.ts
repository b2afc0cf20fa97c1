import type { ContainerNet, EndpointSettings } from '../network/model.js';
import type { HealthConfig } from '../../lib/oci.js';
import type { LogConfig } from './logconfig.js';
import type { MountPointView } from '../../lib/docker-types.js';

/** Docker's container Config, as the API sends and shows it. */
export interface ContainerConfig {
  Hostname: string;
  Domainname: string;
  /** Deprecated in API 1.44 for EndpointSettings.MacAddress; older clients still send it. */
  MacAddress?: string;
  User: string;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  ExposedPorts?: Record<string, object>;
  Tty: boolean;
  OpenStdin: boolean;
  StdinOnce: boolean;
  Env: string[];
  Cmd: string[] | null;
  Healthcheck?: HealthConfig;
  Image: string;
  Volumes: Record<string, object> | null;
  WorkingDir: string;
  Entrypoint: string[] | null;
  OnBuild: string[] | null;
  Labels: Record<string, string>;
  StopSignal?: string;
  StopTimeout?: number;
  /** PouchContainer's rich container: an init as PID 1, an initscript, env for login shells (rich.ts). */
  Rich?: boolean;
  RichMode?: 'dumb-init' | 'tini' | 'systemd';
  InitScript?: string;
}

export interface MountSpec {
  Type: 'bind' | 'volume' | 'tmpfs';
  Source?: string;
  Target: string;
  ReadOnly?: boolean;
  BindOptions?: { Propagation?: string };
  VolumeOptions?: { NoCopy?: boolean; Labels?: Record<string, string> };
  TmpfsOptions?: { SizeBytes?: number; Mode?: number };
}

export interface RestartPolicy {
  Name: '' | 'no' | 'always' | 'on-failure' | 'unless-stopped';
  MaximumRetryCount: number;
}

/** The subset of Docker's HostConfig the engine acts on; the rest is kept and shown as sent. */
export interface HostConfig {
  Binds: string[] | null;
  NetworkMode: string;
  PortBindings: Record<string, Array<{ HostIp: string; HostPort: string }>> | null;
  RestartPolicy: RestartPolicy;
  AutoRemove: boolean;
  VolumeDriver: string;
  VolumesFrom: string[] | null;
  /** Namespace modes: "" (the container's own), "host", or "container:NAME" (PID, IPC; IPC also "private", "shareable", "none"). */
  PidMode?: string;
  IpcMode?: string;
  UTSMode?: string;
  /** "host" or "private" (a cgroup namespace of its own). */
  CgroupnsMode?: string;
  /** Only "" or "host": this engine does not remap user namespaces. */
  UsernsMode?: string;
  /** Extra groups for the container's processes, by name or number. */
  GroupAdd?: string[] | null;
  /** --device-cgroup-rule: extra device cgroup allow rules. */
  DeviceCgroupRules?: string[] | null;
  /** Legacy links, "NAME[:ALIAS]": /etc/hosts entries and ALIAS_* variables for the running containers named. */
  Links?: string[] | null;
  CapAdd: string[] | null;
  CapDrop: string[] | null;
  Dns: string[];
  DnsOptions: string[];
  DnsSearch: string[];
  ExtraHosts: string[] | null;
  Privileged: boolean;
  ReadonlyRootfs: boolean;
  SecurityOpt: string[] | null;
  Tmpfs?: Record<string, string>;
  ShmSize: number;
  Init?: boolean | null;
  Mounts?: MountSpec[];
  Memory: number;
  NanoCpus: number;
  CpuShares: number;
  PidsLimit?: number | null;
  Ulimits: Array<{ Name: string; Soft: number; Hard: number }> | null;
  OomScoreAdj: number;
  Sysctls?: Record<string, string>;
  /** `size` limits the writable layer. */
  StorageOpt?: Record<string, string> | null;
  LogConfig: LogConfig;
  [key: string]: unknown;
}

/** A container's health as inspect shows it (written by health.ts). */
export type HealthStatus = 'starting' | 'healthy' | 'unhealthy';

export interface HealthResult {
  Start: string;
  End: string;
  ExitCode: number;
  Output: string;
}

export interface HealthState {
  Status: HealthStatus;
  FailingStreak: number;
  Log: HealthResult[];
}

export type Status = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

export interface ContainerState {
  Status: Status;
  Pid: number;
  ExitCode: number;
  Error: string;
  StartedAt: string;
  FinishedAt: string;
  OOMKilled: boolean;
  /** Present once a container with a health check has started (health.ts). */
  Health?: HealthState;
}

/** A mount as inspect shows it (Docker's MountPoint), with what the engine keeps beside it. */
export interface MountPoint extends MountPointView {
  Type: 'bind' | 'volume' | 'tmpfs';
  /** Created for this container from the image's VOLUME (removed with `rm -v`). */
  Anonymous?: boolean;
  TmpfsOptions?: string;
  /** `:nocopy` / VolumeOptions.NoCopy: the image's files at the destination are not copied into a new volume. */
  NoCopy?: boolean;
}

/** Everything the engine keeps about a container; written to its directory on every change. */
export interface ContainerRecord {
  Id: string;
  Name: string; // without the leading slash
  Created: string;
  Path: string;
  Args: string[];
  Config: ContainerConfig;
  HostConfig: HostConfig;
  Image: string; // image ID
  ImageChain: string[]; // layer chain IDs, bottom first
  State: ContainerState;
  RestartCount: number;
  ConmonPid: number;
  ManuallyStopped: boolean;
  HasBeenStarted: boolean;
  Mounts: MountPoint[];
  NetworkSandbox?: string;
  /** Endpoint settings asked for at create (docker run --network NAME --ip/--alias) and by connect. */
  NetworkingConfig?: { EndpointsConfig?: Record<string, EndpointSettings> };
  /** Disconnected from the network its NetworkMode names: Docker keeps the mode and leaves that network out. */
  PrimaryNetworkDisconnected?: boolean;
  /** The container's live network state (namespace, endpoints, published ports); absent while not running. */
  Net?: ContainerNet;
}

export const ZERO_TIME = '0001-01-01T00:00:00Z';

/** Has a process (running or paused)? */
export const isLive = (r: ContainerRecord): boolean => r.State.Status === 'running' || r.State.Status === 'paused';
