import { Conmon } from './conmon.js';
import { Runc } from './runc.js';
import type { CreateOptions, ExecOptions, ExecProcess, Runtime, RuntimeState } from './runtime.js';

/** The engine's Runtime: conmon monitors each process (stdio, log, exit file), runc does everything else. */
export class ConmonRuncRuntime implements Runtime {
  private readonly runc: Runc;
  private readonly conmon: Conmon;

  constructor(runcBinary: string, runcRoot: string, conmonBinary: string) {
    this.runc = new Runc(runcBinary, runcRoot);
    this.conmon = new Conmon(conmonBinary, this.runc);
  }

  create(o: CreateOptions): Promise<{ pid: number; conmonPid: number }> {
    return this.conmon.create(o);
  }

  exec(o: ExecOptions): Promise<ExecProcess> {
    return this.conmon.exec(o);
  }

  start(id: string): Promise<void> {
    return this.runc.start(id);
  }

  kill(id: string, signal: number | string, all?: boolean): Promise<void> {
    return this.runc.kill(id, signal, all);
  }

  pause(id: string): Promise<void> {
    return this.runc.pause(id);
  }

  resume(id: string): Promise<void> {
    return this.runc.resume(id);
  }

  delete(id: string): Promise<void> {
    return this.runc.delete(id);
  }

  state(id: string): Promise<RuntimeState | undefined> {
    return this.runc.state(id);
  }

  pids(id: string): Promise<number[]> {
    return this.runc.pids(id);
  }

  update(id: string, resources: object): Promise<void> {
    return this.runc.update(id, resources);
  }
}
