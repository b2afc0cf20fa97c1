import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { SampanError } from '../../lib/errors.js';

export interface RuncState {
  id: string;
  pid: number;
  status: 'creating' | 'created' | 'running' | 'paused' | 'stopped';
  bundle: string;
  created: string;
}

/** Thin wrapper over the runc CLI, with its state under our exec root. */
export class Runc {
  constructor(
    readonly binary: string,
    readonly root: string,
  ) {}

  globalArgs(): string[] {
    return ['--root', this.root];
  }

  run(args: string[], input?: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = execFile(this.binary, [...this.globalArgs(), ...args], { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        if (err) {
          const msg = stderr.toString().trim().split('\n').pop() || err.message;
          reject(new RuncError(msg.replace(/^time="[^"]*" level=\w+ msg="?/, '').replace(/"$/, ''), args[0] ?? ''));
        } else resolve(stdout.toString());
      });
      if (input !== undefined) child.stdin?.end(input);
    });
  }

  start(id: string): Promise<string> {
    return this.run(['start', id]);
  }

  kill(id: string, signal: number | string, all = false): Promise<string> {
    return this.run(['kill', ...(all ? ['--all'] : []), id, String(signal)]);
  }

  pause(id: string): Promise<string> {
    return this.run(['pause', id]);
  }

  resume(id: string): Promise<string> {
    return this.run(['resume', id]);
  }

  async delete(id: string): Promise<void> {
    // runc keeps a state directory per container it knows: none means nothing to delete (and no 7 ms exec)
    if (!(await fs.stat(path.join(this.root, id)).then(() => true, () => false))) return;
    try {
      await this.run(['delete', '--force', id]);
    } catch (err) {
      if (!/does not exist|not found/i.test((err as Error).message)) throw err;
    }
  }

  async state(id: string): Promise<RuncState | undefined> {
    try {
      return JSON.parse(await this.run(['state', id])) as RuncState;
    } catch (err) {
      if (/does not exist|not found/i.test((err as Error).message)) return undefined;
      throw err;
    }
  }

  /** Processes of a container, as `runc ps` lists them. */
  async pids(id: string): Promise<number[]> {
    return JSON.parse(await this.run(['ps', '--format', 'json', id])) as number[];
  }

  update(id: string, resourcesJson: string): Promise<string> {
    return this.run(['update', '--resources', '-', id], resourcesJson);
  }
}

export class RuncError extends SampanError {
  constructor(
    message: string,
    readonly command: string,
  ) {
    super('INTERNAL', `runc ${command}: ${message}`);
  }
}

