import { Conmon } from './conmon.js';
import { Runc } from './runc.js';
import type { CreateOptions, ExecOptions, ExecProcess, Runtime } from './runtime.js';

/** The engine's Runtime: conmon monitors each process (stdio, log, exit file), runc does everything else. */
export class ConmonRuncRuntime extends Runc implements Runtime {
  private readonly conmon: Conmon;

  constructor(runcBinary: string, runcRoot: string, conmonBinary: string) {
    super(runcBinary, runcRoot);
    this.conmon = new Conmon(conmonBinary, this);
  }

  create(o: CreateOptions): Promise<{ pid: number; conmonPid: number }> {
    return this.conmon.create(o);
  }

  exec(o: ExecOptions): Promise<ExecProcess> {
    return this.conmon.exec(o);
  }
}
