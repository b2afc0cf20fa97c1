/**
 * What the Docker API layer asks of whoever serves it (moby's api/server/router/STAR/backend.go): the local engine
 * implements these over one host, the cluster manager over many engines. The layer parses and validates HTTP,
 * calls one method, and writes the answer; a backend never sees HTTP, only options, bodies and an Output.
 *
 * Errors are the vocabulary of src/lib/errors.ts (NOT_FOUND, CONFLICT, …); the layer maps them to Docker's status.
 */
import type { Duplex, Readable, Writable } from 'node:stream';
import type {
  ContainerInspect,
  ContainerPruneResponse,
  ContainerSummary,
  ContainerTopResponse,
  ContainerWaitResponse,
  ExecCreateRequest,
  ExecInspect,
  ExecStartRequest,
  FilesystemChange,
  HistoryItem,
  IdResponse,
  ImageDeleteResponseItem,
  ImageInspect,
  ImagePruneResponse,
  ImageSummary,
  NetworkCreateResponse,
  NetworkResource,
  SystemDf,
  SystemInfo,
  SystemVersion,
  Volume,
  VolumeListResponse,
} from '../lib/docker-types.js';
import type { AuthConfig } from '../lib/distribution/auth.js';
import type { Service, SwarmConfig, SwarmInfo, SwarmNodeInfo, Task } from '../lib/swarm-types.js';

/** Docker's `filters` query parameter: key → values. */
export type Filters = Map<string, string[]>;

/**
 * Where a streamed answer goes. A backend calls `open` (or `hijack`) once it will not fail with a plain HTTP error
 * any more; an error after that reaches the client inside the stream, as Docker's does.
 */
export interface Output {
  /** Aborts when the client goes away: stop work, free what it held. */
  readonly signal: AbortSignal;
  /** 200 with this content type; the body follows. */
  open(contentType: string, headers?: Record<string, string>): Writable;
  /** The connection itself for a raw stream both ways (101 after an Upgrade request, else 200). */
  hijack(contentType: string): Duplex;
}

/** Registry credentials as the client sent them (X-Registry-Auth, decoded by the layer). */
export type RegistryAuth = AuthConfig;

export interface ContainerListOptions {
  all: boolean;
  limit: number;
  size: boolean;
  filters: Filters;
}

export interface LogsOptions {
  stdout: boolean;
  stderr: boolean;
  follow: boolean;
  timestamps: boolean;
  /** Lines from the end; undefined = all. */
  tail?: number;
  since?: string;
  until?: string;
}

export interface AttachOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  stream: boolean;
  logs: boolean;
  detachKeys?: string;
}

export interface CommitOptions {
  container: string;
  ref?: string;
  comment?: string;
  author?: string;
  changes: string[];
  pause: boolean;
  /** A container Config that replaces the container's own (the CLI sends none). */
  config?: Record<string, unknown>;
}

/** `X-Docker-Container-Path-Stat`: what `docker cp` learns of a path before copying. */
export interface PathStat {
  name: string;
  size: number;
  mode: number;
  mtime: string;
  linkTarget: string;
}

export interface ContainerBackend {
  list(o: ContainerListOptions): Promise<ContainerSummary[]>;
  create(body: unknown, name: string | undefined): Promise<IdResponse>;
  inspect(id: string, o: { size: boolean }): Promise<ContainerInspect>;
  start(id: string): Promise<void>;
  stop(id: string, o: { timeout?: number; signal?: string }): Promise<void>;
  restart(id: string, o: { timeout?: number; signal?: string }): Promise<void>;
  kill(id: string, signal?: string): Promise<void>;
  pause(id: string): Promise<void>;
  unpause(id: string): Promise<void>;
  remove(id: string, o: { force: boolean; volumes: boolean; link: boolean }): Promise<void>;
  rename(id: string, name: string): Promise<void>;
  update(id: string, body: Record<string, unknown>): Promise<{ Warnings: string[] }>;
  /**
   * Resolves once the wait is registered (a missing container rejects it: a plain 404), with `result`, which resolves
   * when the condition holds; `signal` aborts the wait (the client left).
   */
  wait(id: string, condition: 'not-running' | 'next-exit' | 'removed', signal: AbortSignal): Promise<{ result: Promise<ContainerWaitResponse> }>;
  top(id: string, psArgs: string): Promise<ContainerTopResponse>;
  resize(id: string, h: number, w: number): Promise<void>;
  changes(id: string): Promise<FilesystemChange[]>;
  export(id: string, out: Output): Promise<void>;
  logs(id: string, o: LogsOptions, out: Output): Promise<void>;
  attach(id: string, o: AttachOptions, out: Output): Promise<void>;
  /** One sample (stream false) or a sample a second until the client leaves. */
  stats(id: string, o: { stream: boolean; oneShot: boolean }, out: Output): Promise<void>;
  statPath(id: string, path: string): Promise<PathStat>;
  getArchive(id: string, path: string, out: Output): Promise<void>;
  putArchive(id: string, path: string, tar: Readable, o: { noOverwriteDirNonDir: boolean; copyUIDGID: boolean }): Promise<void>;
  prune(filters: Filters): Promise<ContainerPruneResponse>;
  commit(o: CommitOptions): Promise<IdResponse>;
}

export interface ExecBackend {
  create(container: string, body: Partial<ExecCreateRequest>): Promise<IdResponse>;
  /** Detached: runs and returns; else hijacks `out` and returns once the process ended or the client detached. */
  start(id: string, o: ExecStartRequest, out: Output): Promise<void>;
  inspect(id: string): Promise<ExecInspect>;
  resize(id: string, h: number, w: number): Promise<void>;
}

export interface PullOptions {
  image: string;
  tag: string;
  platform?: string;
  auth?: RegistryAuth;
  /** A cluster's extension (`constraint=KEY==VALUE`, repeatable): pull on the nodes that meet them only. An engine has none. */
  constraints?: string[];
}

export interface ImportOptions {
  repo: string;
  tag: string;
  message?: string;
  changes: string[];
}

export interface ImageBackend {
  list(o: { all: boolean; filters: Filters }): Promise<ImageSummary[]>;
  inspect(name: string): Promise<ImageInspect>;
  history(name: string): Promise<HistoryItem[]>;
  tag(name: string, repo: string, tag?: string): Promise<void>;
  remove(name: string, o: { force: boolean; prune: boolean }): Promise<ImageDeleteResponseItem[]>;
  prune(filters: Filters): Promise<ImagePruneResponse>;
  /** `POST /images/create?fromImage=`: jsonmessage progress into `out`. */
  pull(o: PullOptions, out: Output): Promise<void>;
  /** `POST /images/create?fromSrc=-`: a root file system tar in. */
  import(o: ImportOptions, tar: Readable, out: Output): Promise<void>;
  push(name: string, tag: string | undefined, auth: RegistryAuth | undefined, out: Output): Promise<void>;
  load(tar: Readable, o: { quiet: boolean }, out: Output): Promise<void>;
  save(names: string[], out: Output): Promise<void>;
  distribution(name: string, auth: RegistryAuth | undefined): Promise<unknown>;
  /** `POST /auth`: the body as sent (username, password, serveraddress, …). */
  login(body: unknown): Promise<{ Status: string; IdentityToken: string }>;
}

export interface BuildBackend {
  /** The classic builder: query parameters as Docker names them, the context tar as the body. */
  build(query: URLSearchParams, context: Readable, registryConfig: string | undefined, out: Output): Promise<void>;
  prune(): Promise<{ CachesDeleted: string[]; SpaceReclaimed: number }>;
}

export interface NetworkBackend {
  list(filters: Filters): Promise<NetworkResource[]>;
  inspect(id: string): Promise<NetworkResource>;
  create(body: unknown): Promise<NetworkCreateResponse>;
  remove(id: string): Promise<void>;
  connect(id: string, body: unknown): Promise<void>;
  disconnect(id: string, body: unknown): Promise<void>;
  prune(filters: Filters): Promise<{ NetworksDeleted: string[] }>;
}

export interface VolumeBackend {
  list(filters: Filters): Promise<VolumeListResponse>;
  inspect(name: string): Promise<Volume>;
  create(body: unknown): Promise<Volume>;
  remove(name: string, force: boolean): Promise<void>;
  prune(filters: Filters): Promise<{ VolumesDeleted: string[]; SpaceReclaimed: number }>;
}

export interface SystemBackend {
  info(): Promise<SystemInfo>;
  version(): Promise<SystemVersion>;
  df(): Promise<SystemDf>;
  /** JSON lines of events: past ones since `since`, then live ones until `until` or the client leaves. */
  events(o: { since?: string; until?: string; filters: Filters }, out: Output): Promise<void>;
  /** Headers `_ping` adds (Swarm, role). */
  pingHeaders?(): Record<string, string>;
}

/**
 * Swarm mode's objects (services, tasks, nodes, configs), where the server is a swarm manager (the cluster manager).
 * Bodies arrive as parsed JSON; the backend validates them. `version` is the object's Version.Index the client read:
 * a stale one is a conflict.
 */
export interface SwarmBackend {
  inspect(): Promise<SwarmInfo>;
  nodes: {
    list(filters: Filters): Promise<SwarmNodeInfo[]>;
    inspect(id: string): Promise<SwarmNodeInfo>;
    update(id: string, version: number, spec: unknown): Promise<void>;
    remove(id: string, force: boolean): Promise<void>;
  };
  services: {
    create(spec: unknown, auth: RegistryAuth | undefined): Promise<{ ID: string; Warnings: string[] }>;
    list(filters: Filters, status: boolean): Promise<Service[]>;
    inspect(id: string): Promise<Service>;
    update(id: string, version: number, spec: unknown, o: { rollback: boolean; auth?: RegistryAuth }): Promise<{ Warnings: string[] }>;
    remove(id: string): Promise<void>;
    logs(id: string, o: LogsOptions & { details: boolean }, out: Output): Promise<void>;
  };
  tasks: {
    list(filters: Filters): Promise<Task[]>;
    inspect(id: string): Promise<Task>;
  };
  configs: {
    create(spec: unknown): Promise<{ ID: string }>;
    list(filters: Filters): Promise<SwarmConfig[]>;
    inspect(id: string): Promise<SwarmConfig>;
    update(id: string, version: number, spec: unknown): Promise<void>;
    remove(id: string): Promise<void>;
  };
}

/** Everything the Docker API layer serves. */
export interface Backends {
  containers: ContainerBackend;
  exec: ExecBackend;
  images: ImageBackend;
  build: BuildBackend;
  networks: NetworkBackend;
  volumes: VolumeBackend;
  system: SystemBackend;
  /** Present where the server is a swarm manager; without it the swarm routes answer "not a swarm manager". */
  swarm?: SwarmBackend;
}
