/**
 * Docker's JSON progress messages (jsonmessage): the lines `docker pull` and `docker push` read to
 * draw their progress bars. Byte-level updates are throttled per layer; status changes always go out.
 */
import type { Writable } from 'node:stream';

export interface ProgressDetail {
  current?: number;
  total?: number;
}

export interface JsonMessage {
  status?: string;
  id?: string;
  progressDetail?: ProgressDetail;
  /** The bar as text, for clients that do not draw it from progressDetail. */
  progress?: string;
  aux?: unknown;
  error?: string;
  errorDetail?: { message: string };
}

/** Decimal sizes with four significant digits, as Docker's HumanSize: "1.234MB", "512B". */
export function humanSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${Number(v.toPrecision(4))}${units[i]}`;
}

/** Docker's bar: "[=====>      ]  1.2MB/3.4MB" (50 columns). */
export function progressBar(current: number, total: number): string {
  if (!(total > 0)) return humanSize(current).padStart(8);
  const pct = Math.min(1, Math.max(0, current / total));
  const bars = Math.floor(pct * 50);
  const box = bars >= 50 ? `[${'='.repeat(50)}>]` : `[${'='.repeat(bars)}>${' '.repeat(49 - bars)}]`;
  return `${box} ${humanSize(current).padStart(8)}/${humanSize(total)}`;
}

/** Writes JSON lines to a response; byte progress at most every `intervalMs` per id. */
export class ProgressWriter {
  private readonly last = new Map<string, number>();
  private closed = false;

  constructor(
    private readonly out: Writable,
    private readonly intervalMs = 100,
  ) {
    out.once('close', () => (this.closed = true));
  }

  send(msg: JsonMessage): void {
    if (this.closed || this.out.writableEnded || this.out.destroyed) return;
    this.out.write(`${JSON.stringify(msg)}\n`);
  }

  status(status: string, id?: string): void {
    this.send(id === undefined ? { status } : { status, progressDetail: {}, id });
  }

  /** A byte-progress update; dropped when the last one for this id went out less than intervalMs ago (unless final). */
  bytes(status: string, id: string, current: number, total: number, force = false): void {
    const now = Date.now();
    const key = `${status}\0${id}`;
    const prev = this.last.get(key) ?? 0;
    if (!force && now - prev < this.intervalMs && current < total) return;
    this.last.set(key, now);
    this.send({ status, progressDetail: { current, total }, progress: progressBar(current, total), id });
  }
}

/** The 12-hex short form Docker uses as a layer's progress id. */
export function shortDigest(d: string): string {
  return d.replace(/^sha256:/, '').slice(0, 12);
}
