/** Clients that walk away from streaming responses, and what a daemon holds before and after them. */
import { promises as fs } from 'node:fs';
import net from 'node:net';
import { sleep } from './harness.js';

export interface AbandonRequest {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: Buffer;
  /** Body bytes to read before walking away (0: the response head only). */
  bytes?: number;
}

function requestHead(r: { method?: string; path: string; headers?: Record<string, string> }, length: number): string {
  const lines = [`${r.method ?? 'GET'} ${r.path} HTTP/1.1`, 'Host: x', `Content-Length: ${length}`, ...Object.entries(r.headers ?? {}).map(([k, v]) => `${k}: ${v}`)];
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/**
 * Send a request, read its response head and a little of its body, then destroy the socket as a client that
 * gave up does. Resolves with the status line.
 */
export function abandon(to: net.NetConnectOpts, r: AbandonRequest): Promise<string> {
  const want = r.bytes ?? 1024;
  const body = r.body ?? Buffer.alloc(0);
  return new Promise((resolve, reject) => {
    const s = net.connect(to);
    let buf = Buffer.alloc(0);
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      if (err) reject(err);
      else resolve(buf.subarray(0, buf.indexOf('\r\n')).toString());
    };
    const timer = setTimeout(() => finish(new Error(`${r.path}: no ${want} body bytes within 60 s (got ${buf.length} bytes)`)), 60_000);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end >= 0 && buf.length - end - 4 >= want) finish();
    });
    s.on('error', (err) => finish(err));
    s.on('close', () => finish(new Error(`${r.path}: the daemon closed the connection after ${buf.length} bytes: ${buf.subarray(0, 300).toString()}`)));
    s.write(requestHead(r, body.length));
    s.write(body);
  });
}

/**
 * Send a request head that promises `body` and only the first `sent` bytes of it, then destroy the socket once the
 * daemon has taken them in (a large part cannot sit in the socket buffer: the daemon is mid-read when it goes).
 */
export function abandonUpload(to: net.NetConnectOpts, r: { method: string; path: string; headers?: Record<string, string> }, body: Buffer, sent: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(to);
    // a daemon may refuse the upload and close first: whether it still answers is the caller's check
    s.on('error', () => resolve());
    s.write(requestHead(r, body.length));
    s.write(body.subarray(0, sent), () => {
      s.destroy();
      resolve();
    });
  });
}

async function fdCount(pid: number): Promise<number> {
  return (await fs.readdir(`/proc/${pid}/fd`)).length;
}

/** The processes below `pid` (children, theirs, ...). */
async function descendants(pid: number): Promise<number[]> {
  const parent = new Map<number, number>();
  for (const p of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    const stat = await fs.readFile(`/proc/${p}/stat`, 'utf8').catch(() => '');
    // the command name is in parentheses and may hold spaces: the parent pid is the second field after it
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid) parent.set(Number(p), ppid);
  }
  const out: number[] = [];
  for (const p of parent.keys()) {
    for (let q = parent.get(p); q; q = parent.get(q)) {
      if (q === pid) {
        out.push(p);
        break;
      }
    }
  }
  return out;
}

/** Processes whose command line holds `marker` (e.g. a daemon's temp dir: the monitors it started, detached). */
export async function processesWith(marker: string): Promise<number[]> {
  const out: number[] = [];
  for (const p of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    const cmd = await fs.readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(marker)) out.push(Number(p));
  }
  return out;
}

export interface Holdings {
  fds: number;
  procs: Set<number>;
}

/** What daemon `pid` holds: its open files, and the processes below it or naming `marker` in their command line. */
export async function holdings(pid: number, marker?: string): Promise<Holdings> {
  return { fds: await fdCount(pid), procs: new Set([...(await descendants(pid)), ...(marker ? await processesWith(marker) : [])]) };
}

/** Open files a daemon may keep after the first use of a route (a lazily opened log, a pooled connection). */
const FD_SLACK = 8;

async function describe(pids: number[]): Promise<string> {
  const cmds = await Promise.all(pids.slice(0, 3).map((p) => fs.readFile(`/proc/${p}/cmdline`, 'utf8').then((c) => c.replace(/\0/g, ' ').slice(0, 100), () => '(gone)')));
  return `${pids.length}, e.g. ${cmds.join('; ')}`;
}

/**
 * What daemon `pid` holds beyond `before` (open files past a small slack, processes that were not there), polled
 * until nothing or 30 s pass: freeing is asynchronous (sockets close, monitors exit). Empty when all was freed.
 */
export async function leftOver(pid: number, before: Holdings, marker?: string): Promise<string[]> {
  return settled(async () => {
    const now = await holdings(pid, marker);
    const extra = [...now.procs].filter((p) => !before.procs.has(p));
    return [
      ...(now.fds > before.fds + FD_SLACK ? [`open files grew from ${before.fds} to ${now.fds}`] : []),
      ...(extra.length ? [`processes left: ${await describe(extra)}`] : []),
    ];
  });
}

/** Poll `probe` until it reports nothing or 30 s pass; resolves with its last report. */
export async function settled(probe: () => Promise<string[]>): Promise<string[]> {
  const end = Date.now() + 30_000;
  for (;;) {
    const over = await probe();
    if (!over.length || Date.now() > end) return over;
    await sleep(200);
  }
}
