/**
 * Time as the code sees it, injected so that tests run on a fake clock instead of waiting (and
 * asserting elapsed times, which pass or fail with the machine's load).
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves once `ms` have passed on this clock. */
  sleep(ms: number): Promise<unknown>;
}

export const realClock: Clock = { now: () => Date.now(), sleep: (ms) => sleep(ms) };

/** A clock for tests: time moves only on `advance`, which wakes the sleeps it passes. */
export class FakeClock implements Clock {
  private t: number;
  private sleepers: Array<{ until: number; wake: () => void }> = [];
  private waiters: Array<() => void> = [];

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.t = start;
  }

  now = (): number => this.t;

  sleep = (ms: number): Promise<void> =>
    new Promise((wake) => {
      this.sleepers.push({ until: this.t + ms, wake });
      for (const w of this.waiters.splice(0)) w();
    });

  /** Once `count` sleeps are under way: how long each has left (what the code chose to wait). */
  async sleeping(count = 1): Promise<number[]> {
    while (this.sleepers.length < count) await new Promise<void>((r) => this.waiters.push(r));
    return this.sleepers.map((s) => s.until - this.t);
  }

  advance(ms: number): void {
    this.t += ms;
    const due = this.sleepers.filter((s) => s.until <= this.t);
    this.sleepers = this.sleepers.filter((s) => s.until > this.t);
    for (const s of due) s.wake();
  }
}
