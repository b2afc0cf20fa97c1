/** A cluster testbed (`sampan cluster testbed`) for a test file: started before its tests, torn down after. */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs, openSync, closeSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { TestbedDescription } from '../../src/cluster/index.js';
import { SAMPAN, runCmd, until } from '../harness.js';

export class TestCluster {
  private constructor(
    /** The testbed's dir (short: attach socket paths under it must fit in 108 bytes). */
    readonly dir: string,
    private readonly proc: ChildProcess,
    readonly tb: TestbedDescription,
  ) {}

  /** The manager as the docker CLI reaches it: its unix socket, or (--tls) its TCP address with the testbed's client certificate. */
  readonly env = (): NodeJS.ProcessEnv => (this.tb.tls
    ? { DOCKER_HOST: this.tb.managers[0]!.host, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: this.tb.tls.certPath, DOCKER_CLI_HINTS: 'false' }
    : { DOCKER_HOST: `unix://${path.join(this.dir, 'cluster.sock')}`, DOCKER_CLI_HINTS: 'false' });

  /**
   * `hosts` emulated hosts and (by default) one manager, each host's engine seeded with busybox; `tls`: the testbed's
   * --tls; `clusters`: its --clusters (`hosts` each, the proxy in front); `registry`: its --registry.
   */
  static async start(hosts: number, prefix: string, opts: { tls?: boolean; managers?: number; etcdMembers?: 1 | 3; clusters?: number; registry?: boolean } = {}): Promise<TestCluster> {
    const dir = path.join(await fs.mkdtemp(`/tmp/${prefix}-`), 'tb');
    const fd = openSync(`${dir}.log`, 'a');
    const proc = spawn(SAMPAN, [
      'cluster', 'testbed', '--hosts', String(hosts), '--managers', String(opts.managers ?? 1), '--etcd-members', String(opts.etcdMembers ?? 1), '--dir', dir, ...(opts.tls ? ['--tls'] : []), ...(opts.clusters ? ['--clusters', String(opts.clusters)] : []),
      ...(opts.registry ? ['--registry'] : []),
    ], { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const output = () => readFileSync(`${dir}.log`, 'utf8');
    await until(async () => {
      if (proc.exitCode !== null) throw new Error(`the testbed exited before it was ready:\n${output()}`);
      return /^ready/m.test(output());
    }, 150_000, 200);
    const tb = JSON.parse(await fs.readFile(path.join(dir, 'testbed.json'), 'utf8')) as TestbedDescription;
    for (const h of tb.hosts) {
      const seeded = await runCmd(SAMPAN, ['image', 'seed', '--host', `unix://${h.socket}`]);
      if (seeded.code !== 0) throw new Error(`seeding ${h.name} failed: ${seeded.stderr}`);
    }
    return new TestCluster(dir, proc, tb);
  }

  docker(args: string[]) {
    return runCmd('docker', args, { env: this.env(), timeoutMs: 90_000 });
  }

  sampan(args: string[]) {
    return runCmd(SAMPAN, ['--host', this.env().DOCKER_HOST!, ...args], { env: this.env(), timeoutMs: 120_000 });
  }

  /** A GET on the cluster's socket, or on another (one manager's). */
  get(p: string, socketPath = path.join(this.dir, 'cluster.sock'), timeoutMs?: number): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
    return new Promise((resolve, reject) => {
      const req = http.get({ socketPath, path: p, timeout: timeoutMs }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
      }).on('error', reject);
      req.on('timeout', () => req.destroy(new Error(`GET ${p} timed out`)));
    });
  }

  /** SIGTERM the testbed (it removes all it made), then its dir. */
  async stop(): Promise<void> {
    if (this.proc.exitCode === null) {
      const gone = new Promise((r) => this.proc.once('exit', r));
      this.proc.kill('SIGTERM');
      await gone;
    }
    await fs.rm(path.dirname(this.dir), { recursive: true, force: true });
  }
}

/** Alive and not a zombie. */
export async function running(pid: number): Promise<boolean> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

/** Its command line, to start it again the same way once it is gone. */
export async function commandLine(pid: number): Promise<string[]> {
  return (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
}

export function respawn(argv: string[], log: string): ChildProcess {
  const fd = openSync(log, 'a');
  try {
    return spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', fd, fd], detached: true });
  } finally {
    closeSync(fd);
  }
}

