/**
 * The standby's liveness link to the leader, the fast path of a crash failover: a long-lived request on the
 * leader's own API (`GET /sampan/v1/leader-link`, answered 200 and held open while it leads). A process that dies
 * (kill -9, a crash) has its sockets closed by the kernel: the link ends at once, and a reconnect is refused
 * (ECONNREFUSED; ENOENT where its unix socket was removed). Only that pair, a link that was up, then a refused
 * reconnect, calls the leader dead: a paused or cut-off leader closes nothing and refuses nothing (a reconnect that
 * times out or hangs says nothing), so its lease's TTL decides as before. A leader refused for another reason (it
 * restarted its listener) is deposed as a dead one would be, and fencing keeps it from writing anything once its key
 * is gone: it steps down and stands again as a standby.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';

export const LINK_PATH = '/sampan/v1/leader-link';

/** The leader a standby links to: its API, and the lease its election key stands under (what a dead one leaves). */
export interface LinkTarget {
  name: string;
  api: string;
  lease: string;
}

/** A reconnect that is refused: nothing listens any more (the process is gone, or its socket). */
export function isRefusal(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ECONNREFUSED' || code === 'ENOENT';
}

/** How long a dial may take before it counts as "no answer" (not a refusal): a partition, a paused leader. */
const DIAL_MS = 1000;
/** Between attempts that neither linked nor were refused, and after a leader that answered but does not lead. */
const RETRY_MS = 500;

/** The leader's side: holds the request open while it leads; a manager that does not lead says so and hangs up. */
export function answerLink(res: http.ServerResponse, leading: boolean, name: string): void {
  if (!leading) {
    res.writeHead(409, { 'Content-Type': 'text/plain', Connection: 'close', 'X-Sampan-Manager': name }).end('not the leader\n');
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/plain', 'X-Sampan-Manager': name });
  res.flushHeaders();
  // nothing is ever written: the link's only message is its end
  res.socket?.setKeepAlive(true, 10_000);
}

export class LeaderLink {
  private target?: LinkTarget;
  private sock?: Duplex;
  /** The link to this target was up once: a refusal from now on means its process is gone. */
  private wasUp = false;
  private timer?: NodeJS.Timeout;
  private gen = 0;
  /** The leader this manager holds a link to now (answered 200, not ended). */
  linkedTo?: string;

  constructor(
    private readonly dial: (api: string) => Promise<Duplex>,
    /** The link was up, ended, and a reconnect was refused. */
    private readonly onDead: (t: LinkTarget, err: string) => void,
    private readonly log: Logger,
  ) {}

  /** Links to `t` (the standing leader, undefined while this manager leads or none does), dropping a link to another. */
  follow(t: LinkTarget | undefined): void {
    const same = t && this.target && t.name === this.target.name && t.api === this.target.api && t.lease === this.target.lease;
    if (same) return;
    this.drop();
    this.target = t;
    this.wasUp = false;
    if (t) void this.open(this.gen);
  }

  private drop(): void {
    this.gen++;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.sock?.destroy();
    this.sock = undefined;
    this.linkedTo = undefined;
  }

  close(): void {
    this.drop();
    this.target = undefined;
  }

  private later(gen: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.open(gen), RETRY_MS);
  }

  private async open(gen: number): Promise<void> {
    const t = this.target;
    if (!t || gen !== this.gen) return;
    let sock: Duplex;
    try {
      sock = await withTimeout(this.dial(t.api), DIAL_MS);
    } catch (err) {
      if (gen !== this.gen) return;
      if (this.wasUp && isRefusal(err)) {
        this.log.warn({ leader: t.name, api: t.api, lease: t.lease, err: errorMessage(err) }, 'the link to the leader ended and a reconnect was refused: its process is gone');
        this.target = undefined;
        this.onDead(t, errorMessage(err));
        return;
      }
      this.log.debug({ leader: t.name, api: t.api, err: errorMessage(err) }, 'no link to the leader: trying again');
      this.later(gen);
      return;
    }
    if (gen !== this.gen) {
      sock.destroy();
      return;
    }
    this.sock = sock;
    // connected: the process listens (the link was up, whatever it answers)
    this.wasUp = true;
    let head = '';
    let linked = false;
    sock.on('data', (b: Buffer) => {
      if (linked) return;
      head += b.toString('latin1');
      if (!head.includes('\r\n')) return;
      linked = /^HTTP\/1\.[01] 200 /.test(head);
      if (linked) {
        this.linkedTo = t.name;
        this.log.debug({ leader: t.name, api: t.api }, 'linked to the leader');
      }
      else sock.destroy(); // it answers but does not lead: the watch will say who does
    });
    sock.on('error', () => undefined);
    sock.once('close', () => {
      if (gen !== this.gen) return;
      this.sock = undefined;
      this.linkedTo = undefined;
      // a link that held: reconnect at once (that is the test of the process); one that never held: a while later
      if (linked) void this.open(gen);
      else this.later(gen);
    });
    sock.write(`GET ${LINK_PATH} HTTP/1.1\r\nHost: sampan-manager\r\n\r\n`);
  }
}

function withTimeout<T extends Duplex>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(Object.assign(new Error(`no answer within ${ms} ms`), { code: 'ETIMEDOUT' }));
      void p.then((s) => s.destroy(), () => undefined);
    }, ms);
    p.then((s) => {
      clearTimeout(timer);
      resolve(s);
    }, (err: unknown) => {
      clearTimeout(timer);
      reject(err as Error);
    });
  });
}
