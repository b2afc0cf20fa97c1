/**
 * Preheat: put an image's blobs on seeds of a zone before a release. The image is resolved at its registry
 * (manifest, or the linux/amd64 entry of an index), each config and layer blob goes to up to N peers of the
 * zone (round-robin, so a big image spreads over the zone), and the job follows those peers' progress
 * reports on the blob's task: a blob is done when one of its peers finishes it.
 */
import { randomUUID } from 'node:crypto';
import { errorMessage, invalid, notFound } from '../../lib/errors.js';
import type { AuthConfig } from '../../lib/distribution/auth.js';
import { Registries, insecureMatch, isLoopback, type Endpoint } from '../../lib/distribution/client.js';
import { isDigest } from '../../lib/digest.js';
import { silentLogger, type Logger } from '../../lib/log.js';
import { MediaType } from '../../lib/oci.js';
import { DEFAULT_DOMAIN, parseReference, type Reference } from '../../lib/reference.js';
import type { PeerPreheatRequest, PeerTaskView, PreheatJob, PreheatRequest, TaskId } from '../protocol.js';
import type { Host, SchedulerState, StateListener } from './state.js';

type State = PreheatJob['state'];
export const JOB_STATES: State[] = ['pending', 'running', 'done', 'failed'];

export interface ImageBlob {
  digest: TaskId;
  size?: number;
}

export interface ResolvedImage {
  blobs: ImageBlob[];
  /** The blob's URL at the registry, as the seeds fetch it. */
  blobUrl(digest: TaskId): string;
}

export type Resolver = (ref: Reference, auth: AuthConfig | undefined, signal: AbortSignal) => Promise<ResolvedImage>;
/** Hand one blob to one peer (POST {addr}/p2p/v1/preheat); rejects when the peer did not take it. */
export type Dispatcher = (host: Host, req: PeerPreheatRequest, signal: AbortSignal) => Promise<void>;
/** What a peer holds of a task (GET {addr}/p2p/v1/tasks/{id}); undefined when it knows nothing of it. */
export type PeerProbe = (host: Host, taskId: TaskId, signal: AbortSignal) => Promise<PeerTaskView | undefined>;

export interface PreheatOptions {
  state: SchedulerState;
  /** Registries reached over plain http (loopback ones always are). */
  insecureRegistries: string[];
  seedsPerBlob: number;
  timeoutMs: number;
  log?: Logger;
  now?: () => number;
  resolve?: Resolver;
  dispatch?: Dispatcher;
  probe?: PeerProbe;
}

/** An Authorization header value, as the registry client takes credentials: Basic -> user/password, Bearer -> token. */
export function parseAuthorization(v: string | undefined): AuthConfig | undefined {
  if (v === undefined) return undefined;
  const m = /^(\w+)\s+(\S+)\s*$/.exec(v.trim());
  const scheme = m?.[1]?.toLowerCase();
  if (m && scheme === 'basic') {
    const dec = Buffer.from(m[2]!, 'base64').toString('utf8');
    const i = dec.indexOf(':');
    if (i > 0) return { username: dec.slice(0, i), password: dec.slice(i + 1) };
  }
  if (m && scheme === 'bearer') return { registrytoken: m[2]! };
  throw invalid('authorization: expected "Basic <base64 user:password>" or "Bearer <token>"');
}

/** http for loopback registries and --insecure-registry ones, https otherwise; Docker Hub's real host. */
export function registryBase(domain: string, insecure: string[]): URL {
  const host = domain === DEFAULT_DOMAIN ? 'registry-1.docker.io' : domain;
  return new URL(`${isLoopback(domain) || insecureMatch(insecure, domain) ? 'http' : 'https'}://${host}`);
}

interface Descriptor {
  digest?: unknown;
  size?: unknown;
  mediaType?: unknown;
  urls?: unknown;
  platform?: { os?: unknown; architecture?: unknown; variant?: unknown };
}

/** The linux/amd64 image of an index (an entry without a variant first). */
export function pickPlatform(index: { manifests?: Descriptor[] }): TaskId {
  const all = Array.isArray(index.manifests) ? index.manifests : [];
  const fits = all.filter((d) => d.platform?.os === 'linux' && d.platform?.architecture === 'amd64' && typeof d.digest === 'string' && isDigest(d.digest));
  const best = fits.find((d) => d.platform?.variant === undefined) ?? fits[0];
  if (!best) throw invalid('the index has no linux/amd64 image');
  return best.digest as TaskId;
}

/** The config and layer blobs of an image manifest, without duplicates or foreign layers (not in the registry). */
export function imageBlobs(manifest: { config?: Descriptor; layers?: Descriptor[] }): ImageBlob[] {
  const out: ImageBlob[] = [];
  const seen = new Set<string>();
  const descs = [manifest.config, ...(Array.isArray(manifest.layers) ? manifest.layers : [])];
  for (const d of descs) {
    if (!d || typeof d.digest !== 'string' || !isDigest(d.digest)) throw invalid('the manifest names a blob without a sha256 digest');
    if (Array.isArray(d.urls) && d.urls.length > 0) continue;
    if (seen.has(d.digest)) continue;
    seen.add(d.digest);
    out.push({ digest: d.digest, ...(typeof d.size === 'number' ? { size: d.size } : {}) });
  }
  return out;
}

const INDEX_TYPES = new Set<string>([MediaType.OciIndex, MediaType.DockerManifestList]);

/** Resolve at the registry with the Distribution client: auth challenges (Basic, or a Bearer token from its realm) included. */
export function registryResolver(registries: Registries): Resolver {
  return async (ref, auth, signal) => {
    const base = registryBase(ref.domain, registries.insecure);
    // a fixed scheme (the client would otherwise try https first for insecure registries): seeds get the same URL
    const ep: Endpoint = { domain: ref.domain, base, tlsInsecure: false, mirror: true };
    const repo = registries.repo(ep, ref.path, auth, ['pull'], signal);
    let m = await repo.getManifest(ref.digest ?? ref.tag ?? 'latest');
    for (let depth = 0; INDEX_TYPES.has(m.mediaType); depth++) {
      if (depth >= 2) throw invalid(`${ref.path}: indexes nested too deep`);
      m = await repo.getManifest(pickPlatform(JSON.parse(m.bytes.toString('utf8')) as { manifests?: Descriptor[] }));
    }
    const blobs = imageBlobs(JSON.parse(m.bytes.toString('utf8')) as { config?: Descriptor; layers?: Descriptor[] });
    return { blobs, blobUrl: (d) => `${base.origin}/v2/${ref.path}/blobs/${d}` };
  };
}

const PEER_TIMEOUT_MS = 10_000;

export const httpDispatch: Dispatcher = async (host, req, signal) => {
  const res = await fetch(`${host.addr}/p2p/v1/preheat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(req),
    signal: AbortSignal.any([signal, AbortSignal.timeout(PEER_TIMEOUT_MS)]),
  });
  const text = await res.text().catch(() => '');
  if (!res.ok) throw new PeerRefused(`peer ${host.peerId} answered ${res.status}: ${text.slice(0, 200)}`);
};

export const httpProbe: PeerProbe = async (host, taskId, signal) => {
  const res = await fetch(`${host.addr}/p2p/v1/tasks/${taskId}`, { signal: AbortSignal.any([signal, AbortSignal.timeout(PEER_TIMEOUT_MS)]) });
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    return undefined;
  }
  return (await res.json()) as PeerTaskView;
};

/** The peer was reached and said no (as opposed to not being reached at all). */
class PeerRefused extends Error {}

interface BlobTrack {
  digest: TaskId;
  size?: number;
  /** Peers it was handed to (listed before the POST: a fast peer may report before the POST returns). */
  peers: string[];
  failedPeers: Set<string>;
  state: State;
  error?: string;
}

interface Job {
  id: string;
  image: string;
  zone?: string;
  state: State;
  blobs: BlobTrack[];
  /** The job as a whole failed (resolution, no peers, timeout). */
  fatal?: string;
  /** Its blobs were handed out (or are being). */
  dispatched: boolean;
  createdAt: number;
  settledAt?: number;
}

/** Settled jobs are kept this long for GET, and at most this many jobs in all. */
const KEEP_SETTLED_MS = 3_600_000;
const MAX_JOBS = 1000;

export class PreheatManager implements StateListener {
  private readonly jobs = new Map<string, Job>();
  private readonly byTask = new Map<TaskId, Set<Job>>();
  private readonly abort = new AbortController();
  private readonly registries?: Registries;
  private readonly resolve: Resolver;
  private readonly dispatch: Dispatcher;
  private readonly probe: PeerProbe;
  private readonly log: Logger;
  private readonly now: () => number;
  /** Round-robin position over the zone's peers, kept across blobs and jobs. */
  private cursor = 0;

  constructor(private readonly o: PreheatOptions) {
    this.log = o.log ?? silentLogger;
    this.now = o.now ?? Date.now;
    if (!o.resolve) this.registries = new Registries({ insecure: o.insecureRegistries }, this.log);
    this.resolve = o.resolve ?? registryResolver(this.registries!);
    this.dispatch = o.dispatch ?? httpDispatch;
    this.probe = o.probe ?? httpProbe;
  }

  /** Start a job; bad input (reference, authorization) is refused here, everything else shows in the job. */
  create(req: PreheatRequest): { job: PreheatJob; done: Promise<void> } {
    const ref = parseReference(req.image);
    const auth = parseAuthorization(req.authorization);
    const job: Job = { id: randomUUID(), image: req.image, ...(req.zone !== undefined ? { zone: req.zone } : {}), state: 'pending', blobs: [], dispatched: false, createdAt: this.now() };
    this.jobs.set(job.id, job);
    this.trim();
    this.log.info({ job: job.id, image: req.image, zone: req.zone ?? null }, 'preheat job created');
    const done = this.run(job, ref, auth, req.authorization).catch((err: unknown) => {
      job.fatal = errorMessage(err);
      this.settle(job);
      this.log.warn({ job: job.id, image: job.image, err: job.fatal }, 'preheat job failed');
    });
    return { job: this.snapshot(job), done };
  }

  get(id: string): PreheatJob {
    const job = this.jobs.get(id);
    if (!job) throw notFound(`unknown preheat job ${id}`);
    return this.snapshot(job);
  }

  counts(): Record<State, number> {
    const c = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<State, number>;
    for (const j of this.jobs.values()) c[j.state]++;
    return c;
  }

  private async run(job: Job, ref: Reference, auth: AuthConfig | undefined, authorization: string | undefined): Promise<void> {
    const image = await this.resolve(ref, auth, AbortSignal.any([this.abort.signal, AbortSignal.timeout(120_000)]));
    job.blobs = image.blobs.map((b) => ({ digest: b.digest, ...(b.size !== undefined ? { size: b.size } : {}), peers: [], failedPeers: new Set(), state: 'pending' }));
    for (const b of job.blobs) {
      let set = this.byTask.get(b.digest);
      if (!set) this.byTask.set(b.digest, (set = new Set()));
      set.add(job);
    }
    const hosts = this.o.state.liveHosts(job.zone);
    if (hosts.length === 0) throw new Error(job.zone !== undefined ? `no peers registered in zone ${job.zone}` : 'no peers registered');
    job.dispatched = true;
    this.settle(job);
    this.log.info({ job: job.id, image: job.image, blobs: job.blobs.length, peers: hosts.length }, 'preheat: image resolved');
    await Promise.all(job.blobs.map((b) => this.place(job, b, hosts, { taskId: b.digest, url: image.blobUrl(b.digest), ...(authorization !== undefined ? { authorization } : {}) })));
    this.settle(job);
  }

  /** Hand one blob to its seeds: the next peers in the rotation, replacing those that cannot be reached. */
  private async place(job: Job, b: BlobTrack, hosts: Host[], req: PeerPreheatRequest): Promise<void> {
    const already = hosts.find((h) => this.o.state.hasFinished(b.digest, h.peerId));
    if (already) {
      b.peers.push(already.peerId);
      b.state = 'done';
      return;
    }
    const want = Math.min(this.o.seedsPerBlob, hosts.length);
    const start = this.cursor % hosts.length;
    this.cursor = (start + want) % hosts.length;
    const order = [...hosts.slice(start), ...hosts.slice(0, start)];
    let accepted = 0;
    let next = 0;
    while (accepted < want && next < order.length && !this.abort.signal.aborted) {
      const batch = order.slice(next, next + want - accepted);
      next += batch.length;
      const ok = await Promise.all(batch.map((h) => this.handTo(job, b, h, req)));
      accepted += ok.filter(Boolean).length;
    }
    if (accepted === 0 && b.state !== 'done') {
      b.state = 'failed';
      b.error = `no peer took blob ${b.digest}`;
      this.settle(job);
    } else if (b.state === 'pending') {
      b.state = 'running';
    }
  }

  private async handTo(job: Job, b: BlobTrack, h: Host, req: PeerPreheatRequest): Promise<boolean> {
    b.peers.push(h.peerId);
    try {
      await this.dispatch(h, req, this.abort.signal);
      this.log.debug({ job: job.id, blob: b.digest, peerId: h.peerId }, 'preheat: blob handed to a seed');
      return true;
    } catch (err) {
      b.peers = b.peers.filter((p) => p !== h.peerId);
      // not reached at all: later jobs skip it until it is heard from again
      if (!(err instanceof PeerRefused)) this.o.state.markUnreachable(h.peerId);
      this.log.warn({ job: job.id, blob: b.digest, peerId: h.peerId, addr: h.addr, err: errorMessage(err) }, 'preheat: peer did not take the blob');
      return false;
    }
  }

  // ---------- progress, from the state ----------

  peerFinished(taskId: TaskId, peerId: string): void {
    for (const job of this.byTask.get(taskId) ?? []) {
      for (const b of job.blobs) {
        if (b.digest !== taskId || b.state === 'done' || !b.peers.includes(peerId)) continue;
        b.state = 'done';
        this.log.debug({ job: job.id, blob: taskId, peerId }, 'preheat: blob on its seed');
        this.settle(job);
      }
    }
  }

  peerFailed(taskId: TaskId, peerId: string, why: string): void {
    for (const job of this.byTask.get(taskId) ?? []) {
      for (const b of job.blobs) {
        if (b.digest !== taskId || b.state === 'done' || !b.peers.includes(peerId)) continue;
        b.failedPeers.add(peerId);
        if (b.state === 'running' && b.peers.every((p) => b.failedPeers.has(p))) {
          b.state = 'failed';
          b.error = `blob ${taskId}: its seeds failed (${peerId}: ${why})`;
          this.settle(job);
        }
      }
    }
  }

  /** Ask the seeds of running blobs what they hold: a peer that had the blob already reports nothing. */
  async poll(): Promise<void> {
    const checks: Array<Promise<void>> = [];
    for (const job of this.jobs.values()) {
      if (job.state !== 'running') continue;
      for (const b of job.blobs) {
        if (b.state !== 'running') continue;
        for (const id of b.peers) {
          const h = this.o.state.hosts.get(id);
          if (!h || b.failedPeers.has(id)) continue;
          checks.push(
            this.probe(h, b.digest, this.abort.signal).then(
              (v) => {
                if (v?.complete) this.peerFinished(b.digest, id);
              },
              () => undefined,
            ),
          );
        }
      }
    }
    await Promise.all(checks);
  }

  /** Time out jobs that take too long; forget old settled ones. */
  tick(): void {
    const now = this.now();
    for (const job of this.jobs.values()) {
      if (job.settledAt !== undefined || now - job.createdAt < this.o.timeoutMs) continue;
      for (const b of job.blobs) if (b.state !== 'done') b.state = 'failed';
      job.fatal = `timed out after ${Math.round(this.o.timeoutMs / 1000)} s`;
      this.settle(job);
      this.log.warn({ job: job.id, image: job.image }, 'preheat job timed out');
    }
    for (const job of [...this.jobs.values()]) if (job.settledAt !== undefined && now - job.settledAt >= KEEP_SETTLED_MS) this.forget(job);
  }

  close(): void {
    this.abort.abort();
    this.registries?.close();
  }

  // ---------- internals ----------

  /**
   * The job's state from its blobs': failed as soon as one failed, done when all are. A failed blob may
   * still turn done (a seed that gave up on P2P finishes from the upstream), and the job with it.
   */
  private settle(job: Job): void {
    const prev = job.state;
    const allDone = job.blobs.length > 0 && job.blobs.every((b) => b.state === 'done');
    job.state = job.fatal !== undefined || job.blobs.some((b) => b.state === 'failed') ? 'failed' : allDone ? 'done' : job.dispatched ? 'running' : 'pending';
    if (job.state === 'done' || job.state === 'failed') job.settledAt ??= this.now();
    else job.settledAt = undefined;
    if (job.state === 'done' && prev !== 'done') this.log.info({ job: job.id, image: job.image, blobs: job.blobs.length, ms: this.now() - job.createdAt }, 'preheat job done');
  }

  private trim(): void {
    if (this.jobs.size <= MAX_JOBS) return;
    for (const job of this.jobs.values()) {
      if (this.jobs.size <= MAX_JOBS) break;
      if (job.settledAt !== undefined) this.forget(job);
    }
  }

  private forget(job: Job): void {
    this.jobs.delete(job.id);
    for (const b of job.blobs) {
      const set = this.byTask.get(b.digest);
      set?.delete(job);
      if (set?.size === 0) this.byTask.delete(b.digest);
    }
  }

  private snapshot(job: Job): PreheatJob {
    const error = job.fatal ?? job.blobs.find((b) => b.state === 'failed')?.error;
    return {
      id: job.id,
      image: job.image,
      ...(job.zone !== undefined ? { zone: job.zone } : {}),
      state: job.state,
      blobs: job.blobs.map((b) => ({ digest: b.digest, ...(b.size !== undefined ? { size: b.size } : {}), peers: [...b.peers], state: b.state })),
      ...(error !== undefined ? { error } : {}),
    };
  }
}
