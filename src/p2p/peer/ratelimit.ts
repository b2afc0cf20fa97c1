/** A token bucket in bytes per second: uploads and downloads of a peer stay under their configured rates. */
export class TokenBucket {
  private tokens: number;
  private last = Date.now();
  private queue: Promise<void> = Promise.resolve();

  /** rate 0 means unlimited. Burst: a quarter second of rate, at least one 1 MiB read. */
  constructor(private readonly rate: number) {
    this.tokens = this.burst;
  }

  private get burst(): number {
    return Math.max(this.rate / 4, 1 << 20);
  }

  /** Resolves when n bytes may pass; callers queue in order, so one large take does not starve. */
  take(n: number): Promise<void> {
    if (!this.rate) return Promise.resolve();
    const next = this.queue.then(async () => {
      for (;;) {
        const now = Date.now();
        this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
        this.last = now;
        if (this.tokens >= Math.min(n, this.burst)) {
          this.tokens -= n; // may go negative for n > burst: the debt is paid by the next callers' wait
          return;
        }
        await new Promise((r) => setTimeout(r, Math.ceil(((Math.min(n, this.burst) - this.tokens) / this.rate) * 1000)));
      }
    });
    this.queue = next.catch(() => undefined);
    return next;
  }
}
