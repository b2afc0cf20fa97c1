/**
 * A real etcd cluster (Debian's etcd-server) of 1 or 3 members on loopback: what the cluster keeps its state in,
 * started by the testbed (and by tests), with the single-member faults an HA test needs (stop, kill, restart).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs, constants, openSync, closeSync } from 'node:fs';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { silentLogger, type Logger } from '../lib/log.js';
import { invalid } from '../lib/errors.js';
import { alive, terminate, waitReady } from './proc.js';
import { freePorts } from '../lib/ports.js';

export const ETCD_BINARY = '/usr/bin/etcd';
const STOP_GRACE_MS = 10_000;
const START_TIMEOUT_MS = 60_000;

export interface EtcdOptions {
  /** Each member's data and log go under DIR/NAME. */
  dir: string;
  members?: 1 | 3;
  binary?: string;
  log?: Logger;
  /** Lets a caller cut a start short (the testbed on SIGTERM). */
  abort?: () => boolean;
}

export interface EtcdMemberInfo {
  name: string;
  pid: number;
  endpoint: string;
}

interface Member {
  name: string;
  clientUrl: string;
  peerUrl: string;
  proc?: ChildProcess;
}

/** GET /health: true once the member serves and sees a leader; false when it does not answer within `timeoutMs`. */
export function healthy(clientUrl: string, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(`${clientUrl}/health`, { timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(res.statusCode === 200 && /"health"\s*:\s*"true"/.test(body)));
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

export class EtcdCluster {
  /** Keeps members of two clusters started side by side from ever joining each other. */
  private readonly token = `sampan-${randomBytes(6).toString('hex')}`;

  private constructor(
    private readonly opts: Required<Pick<EtcdOptions, 'dir' | 'binary' | 'log'>> & Pick<EtcdOptions, 'abort'>,
    private readonly members: Member[],
  ) {}

  /** Starts every member and resolves once each answers /health; on failure stops what it started. */
  static async start(opts: EtcdOptions): Promise<EtcdCluster> {
    const n = opts.members ?? 1;
    if (n !== 1 && n !== 3) throw invalid(`etcd members: ${String(n)}: use 1 or 3`);
    const ports = await freePorts(2 * n);
    const members: Member[] = Array.from({ length: n }, (_, i) => ({ name: `etcd${i + 1}`, clientUrl: `http://127.0.0.1:${ports[2 * i]}`, peerUrl: `http://127.0.0.1:${ports[2 * i + 1]}` }));
    const binary = opts.binary ?? ETCD_BINARY;
    await fs.access(binary, constants.X_OK).catch(() => {
      throw invalid(`no etcd at ${binary}: install Debian's etcd-server (scripts/setup.sh does)`);
    });
    const c = new EtcdCluster({ dir: opts.dir, binary, log: opts.log ?? silentLogger, abort: opts.abort }, members);
    try {
      await fs.mkdir(opts.dir, { recursive: true });
      for (const m of members) c.spawn(m);
      await c.waitHealthy();
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  /** Client URLs of all members, for etcd3's `hosts` or etcdctl's --endpoints. */
  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  get info(): EtcdMemberInfo[] {
    return this.members.map((m) => ({ name: m.name, pid: m.proc?.pid ?? 0, endpoint: m.clientUrl }));
  }

  private member(name: string): Member {
    const m = this.members.find((x) => x.name === name);
    if (!m) throw invalid(`no etcd member ${name}: the members are ${this.members.map((x) => x.name).join(', ')}`);
    return m;
  }

  /**
   * The same flags start a member the first time and restart it: etcd reads its membership from the data dir
   * once there is one and ignores the --initial-* flags.
   */
  private spawn(m: Member): void {
    const initial = this.members.map((x) => `${x.name}=${x.peerUrl}`).join(',');
    const args = [
      '--name', m.name, '--data-dir', path.join(this.opts.dir, m.name),
      '--listen-client-urls', m.clientUrl, '--advertise-client-urls', m.clientUrl,
      '--listen-peer-urls', m.peerUrl, '--initial-advertise-peer-urls', m.peerUrl,
      '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', this.token,
      '--logger', 'zap', '--log-outputs', 'stderr',
    ];
    const fd = openSync(path.join(this.opts.dir, `${m.name}.log`), 'a');
    try {
      // its own process group: a terminal's ^C reaches the testbed only, which stops etcd once nothing needs it
      m.proc = spawn(this.opts.binary, args, { stdio: ['ignore', fd, fd], detached: true });
    } finally {
      closeSync(fd);
    }
    m.proc.on('error', (err) => this.opts.log.error({ member: m.name, err: err.message }, 'etcd did not start'));
    this.opts.log.info({ member: m.name, pid: m.proc.pid, endpoint: m.clientUrl }, 'etcd member started');
  }

  /** Resolves once every running member (or the named ones) answers /health. */
  async waitHealthy(names?: string[]): Promise<void> {
    const ms = names ? names.map((n) => this.member(n)) : this.members.filter((m) => m.proc && alive(m.proc));
    await Promise.all(ms.map((m) => waitReady(`etcd member ${m.name}`, m.proc!, () => healthy(m.clientUrl), START_TIMEOUT_MS, this.opts.abort)));
  }

  /** Stops one member: gracefully, or with SIGKILL (a crash) when `kill` is set. */
  async stopMember(name: string, opts: { kill?: boolean } = {}): Promise<void> {
    const m = this.member(name);
    if (!m.proc || !alive(m.proc)) return;
    if (opts.kill) {
      const gone = new Promise<void>((r) => m.proc!.once('exit', () => r()));
      m.proc.kill('SIGKILL');
      await gone;
    } else {
      await terminate(m.proc, STOP_GRACE_MS);
    }
    this.opts.log.info({ member: name, kill: !!opts.kill }, 'etcd member stopped');
  }

  /** Starts a stopped member again on its data dir and ports; resolves once it is healthy. */
  async restartMember(name: string): Promise<void> {
    const m = this.member(name);
    if (m.proc && alive(m.proc)) throw invalid(`etcd member ${name} is running`);
    this.spawn(m);
    await this.waitHealthy([name]);
  }

  /** One member after the other: a leader stopping hands over to a member still running, not to one stopping too. */
  async stop(): Promise<void> {
    for (const m of this.members) if (m.proc) await terminate(m.proc, STOP_GRACE_MS);
  }
}
