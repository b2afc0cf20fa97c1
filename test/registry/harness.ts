/** A real `sampan registry` on a free loopback port in a temp dir, and a small raw HTTP client for it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { SAMPAN, freePort, runCmd, type RunResult } from '../harness.js';

/** bin/sampan, or SAMPAN_BIN (e.g. a launcher of a partial build while the tree is mid-change). */
export const BIN = process.env.SAMPAN_BIN ?? SAMPAN;

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

export const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export { freePort };

export interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json<T = any>(): T; // eslint-disable-line @typescript-eslint/no-explicit-any
  text(): string;
}

export interface ReqOpts {
  body?: Buffer | string | object;
  headers?: Record<string, string | number>;
  /** Send the body with chunked transfer encoding (no Content-Length). */
  chunked?: boolean;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
const tlsAgent = new https.Agent({ keepAlive: true, maxSockets: 32, rejectUnauthorized: false });

export class TestRegistry {
  proc?: ChildProcess;
  port = 0;
  log = '';

  private constructor(
    readonly dir: string,
    readonly root: string,
    readonly args: string[],
    readonly env: NodeJS.ProcessEnv,
  ) {}

  static async start(opts: { args?: string[]; env?: NodeJS.ProcessEnv; root?: string } = {}): Promise<TestRegistry> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sreg-'));
    const r = new TestRegistry(dir, opts.root ?? path.join(dir, 'root'), opts.args ?? [], opts.env ?? {});
    await r.launch();
    return r;
  }

  get base(): string {
    return `${this.args.includes('--tls-cert') ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  get hostPort(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Start (or restart, on the same root and port) the registry and wait for GET /v2/ (200, or 401 with auth). */
  async launch(): Promise<void> {
    if (!this.port) this.port = await freePort();
    this.log = '';
    const proc = spawn(BIN, ['registry', '--root', this.root, '--addr', `127.0.0.1:${this.port}`, ...this.args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, SAMPAN_LOG_LEVEL: process.env.SAMPAN_LOG_LEVEL ?? 'info', ...this.env },
    });
    this.proc = proc;
    proc.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    const exited = new Promise<boolean>((r) => proc.once('exit', () => r(true)));
    for (let i = 0; i < 150; i++) {
      // 401: up, with auth on
      const ok = await this.req('GET', '/v2/').then((r) => r.status === 200 || r.status === 401, () => false);
      if (ok) return;
      if (await Promise.race([exited, new Promise<boolean>((r) => setTimeout(() => r(false), 100))])) throw new Error(`registry exited at start:\n${this.log}`);
    }
    throw new Error(`registry did not answer GET /v2/:\n${this.log}`);
  }

  async kill9(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGKILL');
    await gone;
    agent.destroy();
    tlsAgent.destroy();
  }

  async terminate(): Promise<number | null> {
    const p = this.proc;
    if (!p) return null;
    if (p.exitCode !== null || p.signalCode !== null) return p.exitCode;
    const gone = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
    p.kill('SIGTERM');
    return gone;
  }

  async cleanup(): Promise<void> {
    await this.terminate().catch(() => undefined);
    await fs.rm(this.dir, { recursive: true, force: true });
  }

  req(method: string, p: string, opts: ReqOpts = {}): Promise<Res> {
    return request(this.base, method, p, opts);
  }

  // ------------------------------------------------------------ push helpers

  /** Monolithic single-POST upload; returns the digest. */
  async pushBlob(repo: string, data: Buffer | string): Promise<string> {
    const d = sha256(data);
    const r = await this.req('POST', `/v2/${repo}/blobs/uploads/?digest=${d}`, { body: Buffer.from(data), headers: { 'Content-Type': 'application/octet-stream' } });
    if (r.status !== 201) throw new Error(`push blob ${repo}: ${r.status} ${r.text()}`);
    return d;
  }

  async pushManifest(repo: string, ref: string, manifest: object | Buffer, mediaType = OCI_MANIFEST): Promise<{ digest: string; res: Res }> {
    const bytes = Buffer.isBuffer(manifest) ? manifest : Buffer.from(JSON.stringify(manifest));
    const res = await this.req('PUT', `/v2/${repo}/manifests/${ref}`, { body: bytes, headers: { 'Content-Type': mediaType } });
    if (res.status !== 201) throw new Error(`push manifest ${repo}:${ref}: ${res.status} ${res.text()}`);
    return { digest: sha256(bytes), res };
  }

  /** A small image: config + one layer + manifest, tagged. */
  async pushImage(repo: string, tag: string, seed = tag, mediaType = OCI_MANIFEST): Promise<{ digest: string; manifest: Buffer; config: string; layer: string; layerBytes: Buffer }> {
    const layerBytes = Buffer.from(`layer of ${repo}:${seed} `.repeat(50));
    const configBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layerBytes)] }, seed }));
    const layer = await this.pushBlob(repo, layerBytes);
    const config = await this.pushBlob(repo, configBytes);
    const docker = mediaType === DOCKER_MANIFEST;
    const m = {
      schemaVersion: 2,
      mediaType,
      config: { mediaType: docker ? 'application/vnd.docker.container.image.v1+json' : OCI_CONFIG, digest: config, size: configBytes.length },
      layers: [{ mediaType: docker ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : OCI_LAYER, digest: layer, size: layerBytes.length }],
    };
    const manifest = Buffer.from(JSON.stringify(m));
    const { digest } = await this.pushManifest(repo, tag, manifest, mediaType);
    return { digest, manifest, config, layer, layerBytes };
  }
}

export function request(base: string, method: string, p: string, opts: ReqOpts = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const body = opts.body === undefined ? undefined : Buffer.isBuffer(opts.body) ? opts.body : typeof opts.body === 'string' ? Buffer.from(opts.body) : Buffer.from(JSON.stringify(opts.body));
    const headers: Record<string, string | number> = { ...opts.headers };
    if (body && !opts.chunked) headers['Content-Length'] = body.length;
    // the path goes out exactly as given (no URL normalisation of dot segments or %2e)
    const u = new URL(p.startsWith('http') ? p : base);
    const reqPath = p.startsWith('http') ? p.slice(p.indexOf('/', p.indexOf('//') + 2)) : p;
    const tls = u.protocol === 'https:';
    const req = (tls ? https : http).request({ host: u.hostname, port: u.port, path: reqPath, method, headers, agent: tls ? tlsAgent : agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: buf, json: () => JSON.parse(buf.toString()), text: () => buf.toString() });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body && opts.chunked) {
      // several writes, so the body really goes out in chunks
      const step = Math.max(1, Math.ceil(body.length / 4));
      for (let i = 0; i < body.length; i += step) req.write(body.subarray(i, i + step));
      req.end();
    } else {
      req.end(body);
    }
  });
}

/** A raw request line exactly as given (no URL normalisation), for path tricks. */
export function rawRequest(port: number, requestLine: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(`${requestLine}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
    let buf = '';
    s.on('data', (d) => (buf += d.toString()));
    s.on('end', () => resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(buf)?.[1] ?? 0), text: buf }));
    s.on('error', reject);
  });
}

/** The error code of a Distribution error body. */
export function errCode(r: Res): string | undefined {
  try {
    return (r.json() as { errors?: { code: string }[] }).errors?.[0]?.code;
  } catch {
    return undefined;
  }
}

/** Every blob under <root>/blobs hashes to its name. Returns how many were checked. */
export async function verifyBlobStore(root: string): Promise<number> {
  const base = path.join(root, 'blobs', 'sha256');
  let n = 0;
  for (const prefix of await fs.readdir(base).catch(() => [] as string[])) {
    for (const hex of await fs.readdir(path.join(base, prefix))) {
      const data = path.join(base, prefix, hex, 'data');
      let bytes: Buffer;
      try {
        bytes = await fs.readFile(data);
      } catch {
        continue; // a directory whose blob never landed
      }
      const actual = sha256(bytes);
      if (actual !== `sha256:${hex}`) throw new Error(`blob ${hex} holds bytes hashing to ${actual}`);
      n++;
    }
  }
  return n;
}

/** Run a command that must succeed; its output comes with the error otherwise. */
export async function must(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<RunResult> {
  const r = await runCmd(cmd, args, { timeoutMs, env });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}):\n${r.stderr}${r.stdout}`);
  return r;
}

/** A busybox OCI layout at <dir>/bb (tag 1), made with umoci from the host's busybox-static; cmd sh. */
export async function makeBusyboxLayout(dir: string, applets = ['sh', 'ls', 'cat', 'echo', 'sleep', 'true']): Promise<string> {
  const out = path.join(dir, 'bb');
  const rootfs = path.join(dir, 'bbroot');
  const bundle = path.join(dir, 'bundle');
  await fs.mkdir(path.join(rootfs, 'bin'), { recursive: true });
  await fs.copyFile('/bin/busybox', path.join(rootfs, 'bin', 'busybox'));
  await fs.chmod(path.join(rootfs, 'bin', 'busybox'), 0o755);
  for (const a of applets) await fs.symlink('busybox', path.join(rootfs, 'bin', a));
  await must('umoci', ['init', '--layout', out]);
  await must('umoci', ['new', '--image', `${out}:1`]);
  await must('umoci', ['unpack', '--rootless', '--image', `${out}:1`, bundle]);
  await must('cp', ['-a', `${rootfs}/.`, path.join(bundle, 'rootfs')]);
  await must('umoci', ['repack', '--image', `${out}:1`, bundle]);
  await must('umoci', ['config', '--image', `${out}:1`, '--config.cmd', 'sh']);
  return out;
}
