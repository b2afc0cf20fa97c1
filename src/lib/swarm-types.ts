/**
 * Docker's swarm-mode API wire types (moby's api/swagger.yaml: Service, Task, Node, Config, …), the subset the
 * cluster manager serves. Parts of a spec the manager passes through without reading stay loosely typed.
 */

export interface Version {
  Index: number;
}

export interface Meta {
  ID: string;
  Version: Version;
  CreatedAt: string;
  UpdatedAt: string;
}

export interface ConfigReference {
  File?: { Name: string; UID?: string; GID?: string; Mode?: number };
  ConfigID: string;
  ConfigName: string;
}

export interface ContainerSpec {
  Image: string;
  Labels?: Record<string, string>;
  Command?: string[];
  Args?: string[];
  Hostname?: string;
  Env?: string[];
  Dir?: string;
  User?: string;
  TTY?: boolean;
  OpenStdin?: boolean;
  Mounts?: Array<Record<string, unknown>>;
  StopSignal?: string;
  StopGracePeriod?: number;
  Healthcheck?: Record<string, unknown>;
  Configs?: ConfigReference[];
  Init?: boolean;
  [k: string]: unknown;
}

export interface TaskSpec {
  ContainerSpec: ContainerSpec;
  Resources?: { Limits?: { NanoCPUs?: number; MemoryBytes?: number }; Reservations?: { NanoCPUs?: number; MemoryBytes?: number } };
  RestartPolicy?: { Condition?: 'none' | 'on-failure' | 'any'; Delay?: number; MaxAttempts?: number; Window?: number };
  Placement?: { Constraints?: string[]; Preferences?: unknown[]; MaxReplicas?: number };
  Networks?: Array<{ Target: string; Aliases?: string[] }>;
  LogDriver?: unknown;
  ForceUpdate?: number;
  Runtime?: string;
  [k: string]: unknown;
}

export type FailureAction = 'pause' | 'continue' | 'rollback';

export interface UpdateConfig {
  Parallelism?: number;
  /** Nanoseconds. */
  Delay?: number;
  FailureAction?: FailureAction;
  /** Nanoseconds. */
  Monitor?: number;
  MaxFailureRatio?: number;
  Order?: 'stop-first' | 'start-first';
}

export interface ServiceSpec {
  Name: string;
  Labels?: Record<string, string>;
  TaskTemplate: TaskSpec;
  Mode?: { Replicated?: { Replicas?: number }; Global?: Record<string, never> };
  UpdateConfig?: UpdateConfig;
  RollbackConfig?: UpdateConfig;
  Networks?: Array<{ Target: string; Aliases?: string[] }>;
  EndpointSpec?: { Mode?: string; Ports?: unknown[] };
}

export type UpdateState = 'updating' | 'paused' | 'completed' | 'rollback_started' | 'rollback_paused' | 'rollback_completed';

export interface UpdateStatus {
  State: UpdateState;
  StartedAt?: string;
  CompletedAt?: string;
  Message: string;
}

export interface Service extends Meta {
  Spec: ServiceSpec;
  PreviousSpec?: ServiceSpec;
  Endpoint: { Spec: Record<string, unknown>; Ports?: unknown[]; VirtualIPs?: unknown[] };
  UpdateStatus?: UpdateStatus;
  /** With `?status=true`. */
  ServiceStatus?: { RunningTasks: number; DesiredTasks: number; CompletedTasks: number };
}

export type TaskState = 'new' | 'pending' | 'assigned' | 'accepted' | 'preparing' | 'ready' | 'starting' | 'running' | 'complete' | 'shutdown' | 'failed' | 'rejected' | 'remove' | 'orphaned';

export interface TaskStatus {
  Timestamp: string;
  State: TaskState;
  Message: string;
  Err?: string;
  ContainerStatus?: { ContainerID: string; PID: number; ExitCode: number };
}

export interface Task extends Meta {
  Name?: string;
  Labels: Record<string, string>;
  Spec: TaskSpec;
  ServiceID: string;
  Slot: number;
  NodeID: string;
  Status: TaskStatus;
  DesiredState: TaskState;
  NetworksAttachments?: unknown[];
}

export interface SwarmNodeInfo extends Meta {
  Spec: { Name?: string; Labels: Record<string, string>; Role: 'worker' | 'manager'; Availability: 'active' | 'pause' | 'drain' };
  Description: { Hostname: string; Platform: { Architecture: string; OS: string }; Resources: { NanoCPUs: number; MemoryBytes: number }; Engine: { EngineVersion: string; Labels?: Record<string, string> } };
  Status: { State: 'unknown' | 'down' | 'ready' | 'disconnected'; Message?: string; Addr: string };
  ManagerStatus?: { Leader: boolean; Reachability: 'reachable' | 'unreachable' | 'unknown'; Addr: string };
}

export interface ConfigSpec {
  Name: string;
  Labels?: Record<string, string>;
  /** Base64. */
  Data?: string;
  Templating?: unknown;
}

export interface SwarmConfig extends Meta {
  Spec: ConfigSpec;
}

/** `GET /swarm`. */
export interface SwarmInfo extends Meta {
  Spec: Record<string, unknown>;
  TLSInfo: Record<string, unknown>;
  RootRotationInProgress: boolean;
  DataPathPort: number;
  DefaultAddrPool: string[];
  SubnetSize: number;
  JoinTokens: { Worker: string; Manager: string };
}
