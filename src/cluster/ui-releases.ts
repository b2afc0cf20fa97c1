/**
 * The releases as a topic of the dashboard's one live stream: each service's latest release record (its batches,
 * instances and events), kept in memory from what the release controller tells as records change, and read from
 * etcd once when this manager starts to lead (the releases it did not see move). The stream reads this map once a
 * second while someone watches; nothing here polls etcd. The CLI keeps its own per-release watch route.
 */
import type { Logger } from '../lib/log.js';
import type { ReleaseController, ReleaseRecord } from './release/index.js';

/** Services whose last release the topic carries from etcd at a start (those that move later join anyway). */
const SEED_SERVICES = 50;

export class ReleaseTopic {
  private readonly latest = new Map<string, ReleaseRecord>();
  private readonly unobserve: () => void;

  constructor(
    private readonly c: ReleaseController,
    private readonly log: Logger,
  ) {
    this.unobserve = c.observe((r) => this.latest.set(r.service, r), (service) => this.latest.delete(service));
  }

  /** The records the stream sends, keyed by service. */
  read(): Iterable<ReleaseRecord> {
    return this.latest.values();
  }

  /** Reads each service's last release from etcd (the most recently started first), leaving newer ones told meanwhile. */
  async seed(): Promise<void> {
    try {
      const seen = new Set<string>();
      for (const h of await this.c.history()) {
        if (seen.has(h.service)) continue;
        seen.add(h.service);
        if (seen.size > SEED_SERVICES) break;
        const r = await this.c.current(h.service);
        const had = this.latest.get(h.service);
        if (!had || (had.id === r.id ? false : had.createdAt < r.createdAt)) this.latest.set(h.service, r);
      }
    } catch (err) {
      // etcd away: the stream carries what moves from now on; the page reads the history through the routes
      this.log.warn({ err }, 'the dashboard could not read the releases from etcd');
    }
  }

  close(): void {
    this.unobserve();
  }
}
