/**
 * Failed-login delays per source address: the first failure waits `baseDelayMs`, each further one
 * from the same address twice as long (up to `maxDelayMs`), until `resetAfterMs` pass without one or
 * a login from there succeeds. Every failure is logged. The table of addresses is bounded.
 */
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { realClock, type Clock } from '../../lib/clock.js';

export interface LoginThrottleOptions {
  /** Delay after a first failure (ms). Default 1000. */
  baseDelayMs?: number;
  /** Cap of the doubling delay (ms). Default 30000. */
  maxDelayMs?: number;
  /** Failures older than this are forgotten (ms). Default 15 minutes. */
  resetAfterMs?: number;
  /** Addresses remembered at most (the oldest are forgotten first). Default 10000. */
  maxEntries?: number;
  /** Default the real one. */
  clock?: Clock;
}

interface Failures {
  count: number;
  last: number;
}

export class LoginThrottle {
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  private readonly resetAfterMs: number;
  private readonly maxEntries: number;
  private readonly failures = new Map<string, Failures>();
  private readonly clock: Clock;

  constructor(
    private readonly log: Logger,
    opts: LoginThrottleOptions = {},
  ) {
    this.baseDelayMs = opts.baseDelayMs ?? 1000;
    this.maxDelayMs = Math.max(opts.maxDelayMs ?? 30_000, this.baseDelayMs);
    this.resetAfterMs = opts.resetAfterMs ?? 15 * 60_000;
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.clock = opts.clock ?? realClock;
  }

  /** The delay the next failure from `address` would get (ms). */
  nextDelay(address: string): number {
    const f = this.current(address);
    return this.delayFor((f?.count ?? 0) + 1);
  }

  private delayFor(count: number): number {
    if (this.baseDelayMs <= 0) return 0;
    return Math.min(this.baseDelayMs * 2 ** Math.min(count - 1, 30), this.maxDelayMs);
  }

  private current(address: string): Failures | undefined {
    const f = this.failures.get(address);
    if (f && this.clock.now() - f.last > this.resetAfterMs) {
      this.failures.delete(address);
      return undefined;
    }
    return f;
  }

  /** Record a failed login from `address`, log it, and wait the delay it earns. */
  async failed(address: string, user: string | undefined, reason: string, extra: Record<string, unknown> = {}): Promise<number> {
    const prev = this.current(address);
    const count = (prev?.count ?? 0) + 1;
    this.failures.delete(address); // re-insert: the map's order is the order of last failure
    if (this.failures.size >= this.maxEntries) this.failures.delete(this.failures.keys().next().value!);
    this.failures.set(address, { count, last: this.clock.now() });
    const delayMs = this.delayFor(count);
    this.log.warn({ ...extra, user, address, failures: count, delayMs, reason }, 'failed login');
    if (delayMs > 0) await this.clock.sleep(delayMs);
    return delayMs;
  }

  /** A successful login from `address` forgets its failures. */
  succeeded(address: string): void {
    if (this.failures.size > 0) this.failures.delete(address);
  }
}

/** The client's address as the socket sees it (no proxy headers are trusted). */
export function sourceAddress(req: IncomingMessage): string {
  return req.socket?.remoteAddress ?? 'unknown';
}
