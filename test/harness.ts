import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { freePorts } from '../src/lib/ports.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SAMPAN = path.join(REPO, 'bin/sampan');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCmd(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string | Buffer; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { env: { ...process.env, ...opts.env }, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 << 20, encoding: 'buffer' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout: stdout.toString(), stderr: stderr.toString() });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else child.stdin?.end();
  });
}

export interface ApiResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json<T = any>(): T; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** A real engine in a temp root, driven by the real docker CLI and raw HTTP. */
export class TestEngine {
  proc?: ChildProcess;
  readonly sock: string;
  readonly env: NodeJS.ProcessEnv;
  log = '';

  private constructor(
    readonly dir: string,
    /** Extra `sampan engine` flags, kept for restarts. */
    readonly args: string[] = [],
  ) {
    this.sock = path.join(dir, 'e.sock');
    this.env = { DOCKER_HOST: `unix://${this.sock}`, DOCKER_CLI_HINTS: 'false' };
  }

  /** Temp dirs stay short: attach socket paths must fit in 108 bytes. */
  static async start(opts: { seed?: boolean; args?: string[] } = {}): Promise<TestEngine> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sp-'));
    const e = new TestEngine(dir, opts.args);
    await e.launch();
    if (opts.seed !== false) {
      const r = await runCmd(SAMPAN, ['image', 'seed', '--host', `unix://${e.sock}`]);
      if (r.code !== 0) throw new Error(`seed failed: ${r.stderr}`);
    }
    return e;
  }

  private get cgroupParent(): string {
    return `sampan-test-${path.basename(this.dir)}`;
  }

  /** Each engine gets a default bridge of its own: engines side by side must not share one subnet and IPAM. */
  readonly bridge = process.env.SAMPAN_BRIDGE_NAME ?? `sampan${randomBytes(3).toString('hex')}`;
  private readonly subnet = process.env.SAMPAN_BRIDGE_SUBNET ?? `10.${150 + randomBytes(1)[0]! % 50}.${randomBytes(1)[0]!}.0/24`;
  /** And user networks of its own: engines creating networks at once would otherwise pick the same free subnet. */
  private readonly pool = process.env.SAMPAN_DEFAULT_ADDRESS_POOL ?? `base=10.${60 + randomBytes(1)[0]! % 29}.${randomBytes(1)[0]!}.0/24,size=28`;

  async launch(): Promise<void> {
    this.proc = spawn(SAMPAN, ['engine', '--root', path.join(this.dir, 'root'), '--exec-root', path.join(this.dir, 'run'), '--host', `unix://${this.sock}`, '--cgroup-parent', `/${this.cgroupParent}`, ...this.args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, SAMPAN_LOG_LEVEL: process.env.SAMPAN_LOG_LEVEL ?? 'info', SAMPAN_BRIDGE_NAME: this.bridge, SAMPAN_BRIDGE_SUBNET: this.subnet, SAMPAN_DEFAULT_ADDRESS_POOL: this.pool },
    });
    this.proc.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    const exited = new Promise<void>((r) => this.proc!.once('exit', () => r()));
    for (let i = 0; i < 200; i++) {
      const ok = await this.api('GET', '/_ping').then((r) => r.status === 200, () => false);
      if (ok) return;
      const dead = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 100))]);
      if (dead) throw new Error(`engine exited at start:\n${this.log}`);
    }
    throw new Error(`engine did not answer /_ping:\n${this.log}`);
  }

  /** kill -9 the engine (containers must survive). */
  async kill9(): Promise<void> {
    const p = this.proc!;
    const gone = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGKILL');
    await gone;
  }

  async terminate(): Promise<number | null> {
    const p = this.proc!;
    if (p.exitCode !== null) return p.exitCode;
    const gone = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
    p.kill('SIGTERM');
    return gone;
  }

  docker(args: string[], opts: { input?: string | Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
    return runCmd('docker', args, { ...opts, env: { ...this.env, ...opts.env } });
  }

  sampan(args: string[], opts: { input?: string | Buffer; timeoutMs?: number } = {}): Promise<RunResult> {
    return runCmd(SAMPAN, args, { ...opts, env: { SAMPAN_HOST: `unix://${this.sock}` } });
  }

  api(method: string, p: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResult> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : typeof body === 'string' ? Buffer.from(body) : Buffer.from(JSON.stringify(body));
      const req = http.request({ socketPath: this.sock, method, path: p, headers: { ...(payload && !headers['Content-Type'] ? { 'Content-Type': 'application/json' } : {}), ...headers } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const buf = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: buf, json: () => JSON.parse(buf.toString()) });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Remove containers, stop the engine, kill what it left, unmount, delete the temp dir. */
  async cleanup(): Promise<void> {
    // SAMPAN_TEST_LOG_DIR keeps each engine's log for a post-mortem
    if (process.env.SAMPAN_TEST_LOG_DIR) await fs.writeFile(path.join(process.env.SAMPAN_TEST_LOG_DIR, `${path.basename(this.dir)}.log`), this.log).catch(() => undefined);
    if (this.proc && this.proc.exitCode === null) {
      const ids = (await this.docker(['ps', '-aq'], { timeoutMs: 20_000 })).stdout.split('\n').filter(Boolean);
      if (ids.length) await this.docker(['rm', '-f', ...ids], { timeoutMs: 60_000 });
      // user networks' bridges and rules are the host's
      await this.docker(['network', 'prune', '-f'], { timeoutMs: 30_000 });
      await this.terminate();
    }
    for (const pid of await fs.readdir('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      const cmd = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      const root = await fs.readlink(`/proc/${pid}/root`).catch(() => '');
      if (cmd.includes(this.dir) || root.startsWith(this.dir)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    // the default bridge and its isolation rules belong to the host: remove this engine's
    await runCmd('ip', ['link', 'delete', this.bridge]);
    const rules = (await runCmd('iptables', ['-w', '-S', 'SAMPAN-ISOLATION'])).stdout.split('\n');
    for (const l of rules.filter((x) => x.startsWith('-A') && x.includes(`sampan:${this.bridge}`))) {
      await runCmd('iptables', ['-w', '-D', ...l.replace(/"/g, '').split(/\s+/).slice(1)]);
    }
    const nat = (await runCmd('iptables', ['-w', '-t', 'nat', '-S', 'POSTROUTING'])).stdout.split('\n');
    for (const l of nat.filter((x) => x.startsWith('-A') && x.includes(`sampan:${this.bridge}`))) {
      await runCmd('iptables', ['-w', '-t', 'nat', '-D', ...l.replace(/"/g, '').split(/\s+/).slice(1)]);
    }
    const mounts = (await fs.readFile('/proc/self/mounts', 'utf8')).split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(this.dir)).sort().reverse();
    for (const m of mounts) await runCmd('umount', ['-l', m]);
    await fs.rm(this.dir, { recursive: true, force: true });
    // runc removes each container's cgroup; the engine's parent of them is this test's to remove
    for (const ctl of await fs.readdir('/sys/fs/cgroup').catch(() => [])) {
      await fs.rmdir(path.join('/sys/fs/cgroup', ctl, this.cgroupParent)).catch(() => undefined);
    }
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `sampan engine cleanup` of a stopped engine's root: a network's bridge and rules outlive the engine (Docker's do
 * too), and a test that ran one in the machine's own network namespace must not leave them behind.
 */
export async function engineCleanup(root: string, execRoot: string): Promise<void> {
  const r = await runCmd(SAMPAN, ['engine', 'cleanup', '--root', root, '--exec-root', execRoot]);
  if (r.code !== 0) throw new Error(`sampan engine cleanup: ${r.stderr}`);
}

/** Poll until fn returns a truthy value (or time out). */
export async function until<T>(fn: () => Promise<T>, timeoutMs = 10_000, stepMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out waiting for condition');
    await sleep(stepMs);
  }
}

/** Decode Docker's multiplexed stream into stdout and stderr text. */
export function demux(buf: Buffer): { stdout: string; stderr: string } {
  let out = '';
  let err = '';
  let i = 0;
  while (i + 8 <= buf.length) {
    const n = buf.readUInt32BE(i + 4);
    const payload = buf.subarray(i + 8, i + 8 + n).toString();
    if (buf[i] === 2) err += payload;
    else out += payload;
    i += 8 + n;
  }
  return { stdout: out, stderr: err };
}

/** A TCP port that nothing listens on right now, and that this process has not handed out before. */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}
