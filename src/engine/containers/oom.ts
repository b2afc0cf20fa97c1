import { oomKillCount } from './resources.js';

/**
 * Docker's live `oom` event: the kernel's OOM-kill count of each running container with a memory limit, read
 * every second (cgroup v1 offers only an eventfd for this, out of Node's reach). At exit the count sets OOMKilled.
 */
export class OomWatch {
  private readonly seen = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  private polling = false;

  constructor(
    private readonly limited: () => Array<{ id: string; cgroupsPath: string }>,
    private readonly onOom: (id: string) => void,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.poll(), 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      for (const c of this.limited()) {
        const n = await oomKillCount(c.cgroupsPath);
        if (n > (this.seen.get(c.id) ?? 0)) {
          this.seen.set(c.id, n);
          this.onOom(c.id);
        }
      }
    } finally {
      this.polling = false;
    }
  }

  /** At exit: was a process of the container OOM-killed in this run, and was that not reported yet? */
  async atExit(id: string, cgroupsPath: string): Promise<{ killed: boolean; unreported: boolean }> {
    const n = await oomKillCount(cgroupsPath);
    const seen = this.seen.get(id) ?? 0;
    this.seen.delete(id);
    return { killed: n > 0, unreported: n > seen };
  }
}
