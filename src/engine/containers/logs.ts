import { promises as fs, watch, type FSWatcher } from 'node:fs';

/** One entry of conmon's k8s-file log: "<RFC3339Nano> <stdout|stderr> <P|F> <text>". */
export interface LogEntry {
  time: string; // RFC3339Nano in UTC, with Z
  timeNano: bigint;
  stream: 'stdout' | 'stderr';
  partial: boolean;
  text: string;
}

/** Nanoseconds since the epoch of an RFC3339Nano timestamp (conmon writes +00:00 offsets). */
export function parseTimeNano(ts: string): bigint {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/.exec(ts);
  if (!m) return 0n;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  const frac = BigInt((m[2] ?? '').padEnd(9, '0'));
  return BigInt(ms) * 1_000_000n + frac;
}

export function formatTimeNano(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0');
  return `${new Date(ms).toISOString().slice(0, 19)}.${frac}Z`;
}

export function parseLine(line: string): LogEntry | undefined {
  const a = line.indexOf(' ');
  const b = line.indexOf(' ', a + 1);
  const c = line.indexOf(' ', b + 1);
  if (a < 0 || b < 0) return undefined;
  const stream = line.slice(a + 1, b);
  if (stream !== 'stdout' && stream !== 'stderr') return undefined;
  const tag = c < 0 ? line.slice(b + 1) : line.slice(b + 1, c);
  const ns = parseTimeNano(line.slice(0, a));
  return { time: formatTimeNano(ns), timeNano: ns, stream, partial: tag === 'P', text: c < 0 ? '' : line.slice(c + 1) };
}

/** Docker's `since`/`until`: unix seconds with optional fraction ("1700000000.123456789"); 0 means unset. */
export function parseUnixNano(v: string | null): bigint {
  if (!v) return 0n;
  const [s = '0', f = ''] = v.split('.');
  if (!/^\d+$/.test(s) || !/^\d*$/.test(f)) return 0n;
  return BigInt(s) * 1_000_000_000n + BigInt(f.padEnd(9, '0').slice(0, 9) || '0');
}

export interface ReadOptions {
  tail?: number; // -1 or undefined: all
  sinceNano: bigint;
  untilNano: bigint;
  follow: boolean;
  /** Resolves when following should stop (container stopped, client gone). */
  stop?: Promise<void>;
}

/**
 * Yield log entries: the existing ones (tail, since, until), then, when following, new ones as conmon appends them.
 * A log line the monitor wrote in parts ("P") is yielded in parts; callers join them.
 */
export async function* readLog(file: string, o: ReadOptions): AsyncGenerator<LogEntry> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, 'r');
  } catch {
    return;
  }
  try {
    let pos = 0;
    let rest = '';
    const readNew = async (): Promise<LogEntry[]> => {
      const out: LogEntry[] = [];
      for (;;) {
        const buf = Buffer.alloc(1 << 16);
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (!bytesRead) break;
        pos += bytesRead;
        rest += buf.subarray(0, bytesRead).toString('utf8');
        let i;
        while ((i = rest.indexOf('\n')) >= 0) {
          const e = parseLine(rest.slice(0, i));
          rest = rest.slice(i + 1);
          if (e) out.push(e);
        }
      }
      return out;
    };
    const inRange = (e: LogEntry) => (!o.sinceNano || e.timeNano >= o.sinceNano) && (!o.untilNano || e.timeNano <= o.untilNano);
    let first = (await readNew()).filter(inRange);
    if (o.tail !== undefined && o.tail >= 0) {
      // tail counts whole lines: walk back over complete ("F") entries
      let lines = 0;
      let start = first.length;
      while (start > 0) {
        const e = first[start - 1]!;
        if (!e.partial) {
          if (lines === o.tail) break;
          lines++;
        }
        start--;
      }
      first = first.slice(start);
    }
    for (const e of first) yield e;
    if (!o.follow) return;
    if (o.untilNano && o.untilNano <= BigInt(Date.now()) * 1_000_000n) return;
    let stopped = false;
    let wake: (() => void) | undefined;
    void o.stop?.then(() => {
      stopped = true;
      wake?.();
    });
    let watcher: FSWatcher | undefined;
    try {
      watcher = watch(file, () => wake?.());
    } catch {
      watcher = undefined;
    }
    try {
      for (;;) {
        const news = await readNew();
        for (const e of news) {
          if (o.untilNano && e.timeNano > o.untilNano) return;
          if (inRange(e)) yield e;
        }
        if (stopped) {
          for (const e of await readNew()) if (inRange(e)) yield e;
          return;
        }
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 250);
        });
        wake = undefined;
      }
    } finally {
      watcher?.close();
    }
  } finally {
    await fh.close();
  }
}
