/**
 * Pre-pulling: a release has the hosts of its next batch pull the new image while the current batch runs, so
 * that no pull is on the critical path. `prePull(node, image)` asks the node's engine to pull (through its P2P
 * peer where it has one), capped per host (a host's link and disk are shared with what it runs) and per registry
 * (one registry, or its seeds, must not be hit by every host at once), one pull per node and image however often
 * it is asked. A node that already has the image (the node protocol's `images` reports) is done at once.
 * `preheat(image)` has the P2P scheduler seed the image's blobs on peers before any host asks for them.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { JSONMessage } from '../lib/docker-types.js';
import type { EngineClient } from '../lib/engine-client.js';
import { jsonMessages } from '../lib/engine-client.js';
import { conflict, errorMessage, invalid, unavailable, SampanError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { familiarRepo, familiarString, familiarTagged, parseReference, type Reference } from '../lib/reference.js';
import { preheat as p2pPreheat, type PreheatJob } from '../p2p/index.js';
import type { ClusterState, NodeEntry } from './state.js';

export type PrePullState = 'queued' | 'pulling' | 'done' | 'failed';

/** Where one node's pre-pull of one image stands (`GET /sampan/v1/prepull`). */
export interface PrePullStatus {
  node: string;
  image: string;
  /** `none`: never asked for, and the node does not report the image. */
  state: PrePullState | 'none';
  /** Bytes of layers the node downloaded for it, where its engine said (layers it had already are not counted). */
  bytes?: number;
  error?: string;
}

export interface PrePullLimits {
  /** Pulls one host runs at once. */
  perHost: number;
  /** Pulls from one registry (by the image's domain) at once over all hosts. */
  perRegistry: number;
  /** The P2P scheduler's base URL, for preheat. */
  p2pScheduler?: string;
}

export const PREPULL_DEFAULTS = { perHost: 2, perRegistry: 16 };

/** Finished pre-pulls remembered (oldest forgotten first): enough for a release's hosts, bounded for a long-lived manager. */
const KEEP_FINISHED = 20_000;

/** A counting semaphore, first come first served. */
class Slots {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly size: number) {}

  async acquire(): Promise<void> {
    if (this.active < this.size) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  /** Hands the slot to the next waiter, or frees it. */
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }

  get idle(): boolean {
    return this.active === 0 && this.waiting.length === 0;
  }
}

interface Entry {
  status: PrePullStatus;
  nodeId: string;
  done: Promise<void>;
}

export class PrePuller {
  private readonly entries = new Map<string, Entry>();
  private readonly hosts = new Map<string, Slots>();
  private readonly registries = new Map<string, Slots>();
  /** Told every change of a pre-pull's state (metrics, tests, a release's progress). */
  onChange?: (s: PrePullStatus) => void;

  readonly started = new Counter({ name: 'sampan_cluster_prepull_started_total', help: 'Pre-pulls sent to an engine', registers: [] });
  readonly done = new Counter({ name: 'sampan_cluster_prepull_done_total', help: 'Pre-pulls finished, the node already having the image included', labelNames: ['how'], registers: [] });
  readonly failed = new Counter({ name: 'sampan_cluster_prepull_failed_total', help: 'Pre-pulls that failed', registers: [] });
  readonly bytes = new Counter({ name: 'sampan_cluster_prepull_bytes_total', help: 'Layer bytes pre-pulls downloaded, where the engines said', registers: [] });

  constructor(
    private readonly state: ClusterState,
    private readonly client: (n: NodeEntry) => EngineClient,
    private readonly log: Logger,
    private readonly limits: PrePullLimits = PREPULL_DEFAULTS,
  ) {
    if (!(limits.perHost >= 1) || !(limits.perRegistry >= 1)) throw invalid('pre-pull limits: per host and per registry must be at least 1');
  }

  /**
   * Resolves once `node` (id or name) has `image`: at once when it reports it already, else when its engine's pull
   * ends. Two calls for one node and image share one pull; a call after a failure tries again.
   */
  prePull(node: string, image: string): Promise<void> {
    try {
      return this.start(node, image);
    } catch (err) {
      // an unknown node or a bad reference fails the promise, as a failed pull does
      return Promise.reject(err);
    }
  }

  private start(node: string, image: string): Promise<void> {
    const n = this.state.getNode(node);
    const ref = parseReference(image);
    const key = keyOf(n, ref);
    const known = this.entries.get(key);
    if (known && known.status.state !== 'failed') return known.done;
    const status: PrePullStatus = { node: n.rec.name, image, state: 'queued' };
    const entry: Entry = { status, nodeId: n.rec.id, done: Promise.resolve() };
    this.entries.delete(key);
    this.entries.set(key, entry);
    this.forgetOld();
    if (hasImage(n, image, ref)) {
      this.set(status, 'done');
      this.done.inc({ how: 'present' });
      return entry.done;
    }
    this.changed(status);
    entry.done = this.pull(n, image, ref, status);
    // the caller may not wait: its failure is in the status and the log
    entry.done.catch(() => undefined);
    return entry.done;
  }

  /** Where `node`'s pre-pull of `image` stands; `done` also when the node reports the image without one. */
  status(node: string, image: string): PrePullStatus {
    const n = this.state.getNode(node);
    const ref = parseReference(image);
    const e = this.entries.get(keyOf(n, ref));
    if (e) return { ...e.status };
    return { node: n.rec.name, image, state: hasImage(n, image, ref) ? 'done' : 'none' };
  }

  /** Has `node` finished pre-pulling `image` (or had it already)? */
  finished(node: string, image: string): boolean {
    return this.status(node, image).state === 'done';
  }

  /** Has the P2P scheduler seed `image` on peers (of `zone`) ahead of the pulls; resolves with the job once it ends (or at once with `wait: false`). */
  async preheat(image: string, o: { zone?: string; authorization?: string; wait?: boolean } = {}): Promise<PreheatJob> {
    if (!this.limits.p2pScheduler) throw conflict('no P2P scheduler to preheat with: start the manager with --p2p-scheduler URL');
    parseReference(image);
    return p2pPreheat(this.limits.p2pScheduler, { image, ...(o.zone && { zone: o.zone }), ...(o.authorization && { authorization: o.authorization }) }, { wait: o.wait });
  }

  register(registry: Registry): void {
    const entries = this.entries;
    for (const m of [this.started, this.done, this.failed, this.bytes]) registry.registerMetric(m);
    new Gauge({
      name: 'sampan_cluster_prepull_in_flight', help: 'Pre-pulls by state: queued (waiting for a slot of their host or registry) or pulling', labelNames: ['state'], registers: [registry],
      collect() {
        let queued = 0;
        let pulling = 0;
        for (const e of entries.values()) {
          if (e.status.state === 'queued') queued++;
          else if (e.status.state === 'pulling') pulling++;
        }
        this.set({ state: 'queued' }, queued);
        this.set({ state: 'pulling' }, pulling);
      },
    });
  }

  private async pull(n: NodeEntry, image: string, ref: Reference, status: PrePullStatus): Promise<void> {
    const host = slotsOf(this.hosts, n.rec.id, this.limits.perHost);
    const reg = slotsOf(this.registries, ref.domain, this.limits.perRegistry);
    // always host first, then registry: one order, so two pulls never hold each other's second slot
    await host.acquire();
    try {
      await reg.acquire();
      try {
        this.set(status, 'pulling');
        this.started.inc();
        const bytes = await this.pullOn(n, ref);
        status.bytes = bytes;
        if (bytes) this.bytes.inc(bytes);
        this.done.inc({ how: 'pulled' });
        this.set(status, 'done');
        this.log.info({ node: n.rec.name, image, bytes }, 'pre-pull done');
      } finally {
        reg.release();
      }
    } catch (err) {
      status.error = errorMessage(err);
      this.failed.inc();
      this.set(status, 'failed');
      this.log.warn({ node: n.rec.name, image, err: status.error }, 'pre-pull failed');
      throw err;
    } finally {
      host.release();
      if (host.idle) this.hosts.delete(n.rec.id);
      if (reg.idle) this.registries.delete(ref.domain);
    }
  }

  /** The engine's pull, to its end; the bytes of the layers it downloaded, as its progress said. */
  private async pullOn(n: NodeEntry, ref: Reference): Promise<number> {
    if (n.rec.state !== 'up') throw unavailable(`the node ${n.rec.name} is down`);
    const res = await this.client(n).stream('POST', '/images/create', { query: { fromImage: familiarRepo(ref), tag: ref.digest ?? ref.tag ?? 'latest' } });
    const layers = new Map<string, number>();
    for await (const m of jsonMessages<JSONMessage>(res)) {
      if (m.error || m.errorDetail) throw new SampanError('UNAVAILABLE', `pull on ${n.rec.name}: ${m.errorDetail?.message ?? m.error}`);
      const total = m.progressDetail?.total;
      if (m.id && m.status === 'Downloading' && typeof total === 'number' && total > 0) layers.set(m.id, total);
    }
    return [...layers.values()].reduce((a, b) => a + b, 0);
  }

  private set(status: PrePullStatus, state: PrePullState): void {
    status.state = state;
    this.changed(status);
  }

  private changed(status: PrePullStatus): void {
    try {
      this.onChange?.({ ...status });
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'pre-pull listener failed');
    }
  }

  private forgetOld(): void {
    if (this.entries.size <= KEEP_FINISHED) return;
    for (const [k, e] of this.entries) {
      if (this.entries.size <= KEEP_FINISHED) break;
      if (e.status.state === 'done' || e.status.state === 'failed') this.entries.delete(k);
    }
  }
}

/** One pre-pull per node and image, whichever way the image is spelled (`busybox`, `busybox:latest`). */
const keyOf = (n: NodeEntry, ref: Reference) => `${n.rec.id}\0${ref.digest ? familiarString(ref) : familiarTagged(ref)}`;

function slotsOf(map: Map<string, Slots>, key: string, size: number): Slots {
  let s = map.get(key);
  if (!s) map.set(key, (s = new Slots(size)));
  return s;
}

/** The node reported the image under this reference (a tag, `NAME` for `NAME:latest`, an id). */
function hasImage(n: NodeEntry, image: string, ref: Reference): boolean {
  if (n.imageRefs.has(image)) return true;
  if (ref.digest) return false;
  return n.imageRefs.has(familiarTagged({ ...ref, tag: ref.tag ?? 'latest' }));
}
