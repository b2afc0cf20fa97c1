/**
 * Whether the manager reaches etcd, as the last read, write or probe found it. While it does not, the manager
 * serves reads from memory, marked stale (a header on every API answer, `docker info`, a gauge), and refuses
 * changes with a 503 before any engine is told; once etcd answers again, what could not be written is written.
 */
import { errorMessage, unavailable } from '../lib/errors.js';

/** How the store words an etcd it cannot reach (the start of its 503's message). */
export const UNREACHABLE = 'cluster state store (etcd) unreachable';

export class StoreHealth {
  private downSince?: Date;
  /** Told each change: lost (with why) or back. */
  onChange?: (up: boolean, err?: string) => void;

  get up(): boolean {
    return !this.downSince;
  }

  /** etcd answered. */
  reached(): void {
    if (!this.downSince) return;
    this.downSince = undefined;
    this.onChange?.(true);
  }

  lost(err: string): void {
    if (this.downSince) return;
    this.downSince = new Date();
    this.onChange?.(false, err);
  }

  /** One call's outcome: an answer is reached, an unreachable etcd is lost; any other error (a refused guard) says nothing. */
  async track<T>(call: Promise<T>): Promise<T> {
    try {
      const v = await call;
      this.reached();
      return v;
    } catch (err) {
      if (errorMessage(err).startsWith(UNREACHABLE)) this.lost(errorMessage(err));
      throw err;
    }
  }

  /** A change needs etcd: refused while it is known unreachable (nothing is created on an engine for nothing). */
  requireUp(): void {
    if (this.downSince) throw unavailable(`${UNREACHABLE} since ${this.downSince.toISOString()}: changes are refused until it answers (reads are served from the manager's memory and may be stale)`);
  }

  /** What marks an answer stale: etcd unreachable since when; undefined while it answers. */
  get stale(): string | undefined {
    return this.downSince && `etcd unreachable since ${this.downSince.toISOString()}`;
  }
}
