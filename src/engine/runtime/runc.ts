import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { SampanError } from '../../lib/errors.js';
import type { RuntimeState } from './runtime.js';

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

  async start(id: string): Promise<void> {
    await this.run(['start', id]);
  }

  async kill(id: string, signal: number | string, all = false): Promise<void> {
    await this.run(['kill', ...(all ? ['--all'] : []), id, String(signal)]);
  }

  async pause(id: string): Promise<void> {
    await this.run(['pause', id]);
  }

  async resume(id: string): Promise<void> {
    await this.run(['resume', id]);
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

  async state(id: string): Promise<RuntimeState | undefined> {
    try {
      return JSON.parse(await this.run(['state', id])) as RuntimeState;
    } catch (err) {
      if (/does not exist|not found/i.test((err as Error).message)) return undefined;
      throw err;
    }
  }

  /** Processes of a container, as `runc ps` lists them. */
  async pids(id: string): Promise<number[]> {
    return JSON.parse(await this.run(['ps', '--format', 'json', id])) as number[];
  }

  async update(id: string, resources: object): Promise<void> {
    await this.run(['update', '--resources', '-', id], JSON.stringify(resources));
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

