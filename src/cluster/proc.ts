/** Small process helpers shared by the etcd runner and the testbed. */
import { execFile, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs a command to its end; rejects with its stderr when it fails. */
export function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${String(stderr).trim() || err.message}`));
      else resolve(String(stdout));
    });
  });
}

export const alive = (p: ChildProcess) => p.exitCode === null && p.signalCode === null;

/** SIGTERM, then SIGKILL once `graceMs` has passed; resolves when the process has exited. */
export async function terminate(p: ChildProcess, graceMs: number): Promise<void> {
  if (!alive(p)) return;
  const gone = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGTERM');
  const timer = setTimeout(() => p.kill('SIGKILL'), graceMs);
  await gone;
  clearTimeout(timer);
}

/** The last `lines` lines of a log file ('' when there is none): what a process said before it died. */
async function logTail(file: string, lines = 5): Promise<string> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/**
 * Polls `ready` every 100 ms until it holds; fails early when `p` exits (with the end of `logFile`, whose directory a
 * testbed removes when it goes down) or `abort()` says so, or after `timeoutMs`.
 */
export async function waitReady(what: string, p: ChildProcess, ready: () => Promise<boolean>, timeoutMs: number, abort: () => boolean = () => false, logFile?: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await ready().catch(() => false)) return;
    if (!alive(p)) {
      const tail = logFile ? await logTail(logFile) : '';
      throw new Error(`${what} exited at start (code ${p.exitCode ?? p.signalCode})${tail ? `; its log ends:\n${tail}` : ''}`);
    }
    if (abort()) throw new Error(`${what}: start aborted`);
    if (Date.now() > end) throw new Error(`${what} was not ready within ${timeoutMs / 1000} s`);
    await sleep(100);
  }
}

/** A process's state letter (R, S, Z, ...) and parent from /proc/PID/stat; undefined once it is gone. */
export async function procStat(pid: number): Promise<{ state: string; ppid: number } | undefined> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // the command name in parentheses may hold spaces: the fields after its closing one are fixed
  const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return state ? { state, ppid: Number(ppid) } : undefined;
}
