/** P2P test rig on loopback: a real registry behind a byte-counting proxy, the scheduler and peers as processes. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { SAMPAN, freePort, sleep } from '../harness.js';
import { TestRegistry } from '../registry/harness.js';

export const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Counts the blob bytes the registry sends (what P2P is to save), optionally slowing them down. */
export class CountingProxy {
  blobBytes = 0;
  blobGets = 0;
  private server?: http.Server;
  port = 0;
  /** Bytes per second for blob bodies (0: as fast as it goes). */
  rate = 0;

  constructor(private readonly target: number) {}

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const up = http.request({ host: '127.0.0.1', port: this.target, method: req.method, path: req.url, headers: req.headers }, async (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        const isBlob = req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '') && (ur.statusCode ?? 0) < 300;
        if (isBlob) this.blobGets++;
        try {
          for await (const c of ur) {
            if (isBlob) {
              this.blobBytes += (c as Buffer).length;
              if (this.rate) await sleep(((c as Buffer).length / this.rate) * 1000);
            }
            if (!res.write(c)) await new Promise((r) => res.once('drain', r));
          }
          res.end();
        } catch {
          res.destroy();
        }
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server!.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

async function waitHealthy(url: string, proc: ChildProcess, log: () => string): Promise<void> {
  for (let i = 0; i < 150; i++) {
    if (await fetch(url).then((r) => r.ok, () => false)) return;
    if (proc.exitCode !== null) break;
    await sleep(100);
  }
  throw new Error(`${url} did not come up:\n${log()}`);
}

export class Daemon {
  log = '';
  constructor(
    readonly proc: ChildProcess,
    readonly port: number,
  ) {
    proc.stderr?.on('data', (d: Buffer) => (this.log += d.toString()));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const gone = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.kill(signal);
    await gone;
  }
}

export class Peer extends Daemon {
  constructor(
    proc: ChildProcess,
    port: number,
    readonly peerPort: number,
    readonly id: string,
  ) {
    super(proc, port);
  }

  /** GET a blob through this peer's mirror: its bytes' digest and length. */
  async pull(repo: string, digest: string): Promise<{ digest: string; size: number }> {
    const res = await fetch(`${this.url}/v2/${repo}/blobs/${digest}`);
    if (!res.ok) throw new Error(`peer ${this.id}: ${res.status} ${await res.text()}`);
    const buf = Buffer.from(await res.arrayBuffer());
    return { digest: sha256(buf), size: buf.length };
  }

  async metric(name: string): Promise<number> {
    const text = await (await fetch(`${this.url}/metrics`)).text();
    let sum = 0;
    for (const l of text.split('\n')) if (l.startsWith(name)) sum += Number(l.split(' ').pop());
    return sum;
  }

  async holds(digest: string): Promise<{ complete: boolean; pieces: number } | undefined> {
    const res = await fetch(`http://127.0.0.1:${this.peerPort}/p2p/v1/tasks/${digest}`);
    if (!res.ok) return undefined;
    const v = (await res.json()) as { complete: boolean; pieces: number[] };
    return { complete: v.complete, pieces: v.pieces.length };
  }
}

/** A registry (+ counting proxy), a scheduler, peers; everything in one temp dir, all gone at stop(). */
export class P2pRig {
  registry!: TestRegistry;
  proxy!: CountingProxy;
  scheduler?: Daemon;
  readonly peers: Peer[] = [];
  private started = 0;

  private constructor(readonly dir: string) {}

  static async start(o: { scheduler?: boolean } = {}): Promise<P2pRig> {
    const rig = new P2pRig(await fs.mkdtemp(path.join(os.tmpdir(), 'sp2p-')));
    rig.registry = await TestRegistry.start();
    rig.proxy = new CountingProxy(rig.registry.port);
    await rig.proxy.start();
    if (o.scheduler !== false) await rig.startScheduler();
    return rig;
  }

  async startScheduler(port?: number): Promise<Daemon> {
    const p = port ?? (await freePort());
    const proc = spawn(SAMPAN, ['p2p', 'scheduler', '--listen', `127.0.0.1:${p}`, '--seed-stall-seconds', '2'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const d = new Daemon(proc, p);
    await waitHealthy(`${d.url}/healthz`, proc, () => d.log);
    this.scheduler = d;
    return d;
  }

  async startPeer(o: { id?: string; zone?: string; scheduler?: string; env?: NodeJS.ProcessEnv; args?: string[] } = {}): Promise<Peer> {
    const id = o.id ?? `peer${this.started++}`;
    const [port, peerPort] = [await freePort(), await freePort()];
    const args = ['p2p', 'peer', '--root', path.join(this.dir, id), '--listen', `127.0.0.1:${port}`, '--peer-listen', `127.0.0.1:${peerPort}`, '--peer-id', id, '--upstream', this.proxy.url];
    const sched = o.scheduler ?? this.scheduler?.url;
    if (sched) args.push('--scheduler', sched);
    if (o.zone) args.push('--zone', o.zone);
    const proc = spawn(SAMPAN, [...args, ...(o.args ?? [])], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...o.env } });
    const p = new Peer(proc, port, peerPort, id);
    await waitHealthy(`${p.url}/healthz`, proc, () => p.log);
    this.peers.push(p);
    return p;
  }

  /** A blob with these bytes in the registry; its digest. */
  async putBlob(repo: string, data: Buffer<ArrayBuffer>): Promise<string> {
    const digest = sha256(data);
    const res = await fetch(`${this.registry.base}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: data, headers: { 'content-type': 'application/octet-stream' } });
    if (res.status !== 201) throw new Error(`push blob: ${res.status} ${await res.text()}`);
    return digest;
  }

  /** A blob of random bytes in the registry (monolithic upload); its digest. */
  async pushBlob(repo: string, size: number): Promise<{ digest: string; data: Buffer }> {
    const data = randomBytes(size);
    return { digest: await this.putBlob(repo, data), data };
  }

  /** An image: config + one layer (random bytes of layerSize, or the uncompressed tar given), tagged; the digests. */
  async pushImage(repo: string, tag: string, layerBytes: number | Buffer<ArrayBuffer>): Promise<{ config: string; layer: string; manifest: string }> {
    const bytes = typeof layerBytes === 'number' ? randomBytes(layerBytes) : layerBytes;
    const layer = await this.putBlob(repo, bytes);
    const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer] }, config: {} }));
    const config = sha256(cfg);
    await this.putBlob(repo, cfg);
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: cfg.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer, size: bytes.length }],
    }));
    const put = await fetch(`${this.registry.base}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
    if (put.status !== 201) throw new Error(`push manifest: ${put.status} ${await put.text()}`);
    return { config, layer, manifest: sha256(manifest) };
  }

  async stop(): Promise<void> {
    for (const p of this.peers) await p.kill();
    await this.scheduler?.kill();
    await this.proxy?.stop();
    await this.registry?.cleanup();
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}
