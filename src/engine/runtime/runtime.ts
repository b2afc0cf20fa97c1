/**
 * What the container and exec services need of an OCI runtime: a monitored container process (stdio, log, exit
 * file) and the runtime's verbs on it. oci.ts implements it with conmon over runc; engine.ts wires it.
 */

export interface RuntimeState {
  id: string;
  pid: number;
  status: 'creating' | 'created' | 'running' | 'paused' | 'stopped';
  bundle: string;
  created: string;
}

export interface CreateOptions {
  id: string;
  name: string;
  bundle: string;
  spec: unknown;
  /** The k8s-file log; none without. */
  logPath?: string;
  /** Bytes the log may reach before the monitor starts it afresh. */
  logSizeMax?: number;
  exitDir: string;
  tty: boolean;
  stdin: boolean;
  /** Keep the container's stdin open after an attached client leaves (Docker's StdinOnce=false). */
  leaveStdinOpen: boolean;
}

export interface ExecOptions {
  containerId: string;
  execId: string;
  name: string;
  bundle: string;
  process: unknown;
  tty: boolean;
  stdin: boolean;
}

/** A started exec session: ready(), attach to <bundle>/attach, then run(). */
export interface ExecProcess {
  /** Resolves once the attach socket is ready. */
  ready(): Promise<void>;
  /** Let the process run; resolves with its pid. */
  run(): Promise<number>;
  /** Resolves with the exit code when the process ends. */
  exited(): Promise<number>;
}

export interface Runtime {
  /** Create the container (not yet started) under its monitor; resolves with its init pid and the monitor's. */
  create(o: CreateOptions): Promise<{ pid: number; conmonPid: number }>;
  exec(o: ExecOptions): Promise<ExecProcess>;
  start(id: string): Promise<void>;
  /** `all`: every process of the container, not only its init. */
  kill(id: string, signal: number | string, all?: boolean): Promise<void>;
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  /** Forget the container's runtime state; nothing to do when there is none. */
  delete(id: string): Promise<void>;
  /** undefined: the runtime does not know the container. */
  state(id: string): Promise<RuntimeState | undefined>;
  /** The container's processes. */
  pids(id: string): Promise<number[]>;
  /** New cgroup resources (an OCI LinuxResources object) for a running container. */
  update(id: string, resources: object): Promise<void>;
}
