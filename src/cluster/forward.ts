/**
 * A manager that does not serve a request itself (a standby, or a leader handing over) passes it to the leader:
 * plain requests through an HTTP client request of their own, streamed both ways; hijacked ones (attach, exec)
 * as bytes once the request head is written, so the leader's 101 and the raw stream after it pass unchanged.
 * While no leader is known (a switch, a crash until the lease expires), a request waits for one, bounded.
 */
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { promises as fs } from 'node:fs';
import type { Duplex } from 'node:stream';
import { errorMessage, unavailable } from '../lib/errors.js';
import { statusOf } from '../lib/http/status.js';
import type { Logger } from '../lib/log.js';
import type { TlsPaths } from '../lib/tls.js';
import type { LeaderRecord } from './election.js';

/** How long a request waits for a leader to forward to. */
export const LEADER_WAIT_MS = 4000;

/** Headers of one hop, not passed on. */
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/** The leader to forward to, or 'self' when this manager serves after all (it became the leader meanwhile). */
export type LeaderLookup = (ms: number, unreachable?: string) => Promise<LeaderRecord | 'self' | undefined>;

/** A request this manager serves itself after all. */
class ServeHere extends Error {}

export class Forwarder {
  private tlsFiles?: Promise<tls.ConnectionOptions>;
  /** Requests being forwarded (streams included): a manager that stops lets them finish, bounded. */
  inflight = 0;

  constructor(
    private readonly leader: LeaderLookup,
    private readonly log: Logger,
    /** The manager's own certificate: what it presents to a leader listening on tcp:// (mutual TLS). */
    private readonly ownTls?: TlsPaths,
  ) {}

  async dial(api: string): Promise<Duplex> {
    const connected = (s: net.Socket | tls.TLSSocket, ev: string) => new Promise<Duplex>((resolve, reject) => {
      s.once(ev, () => {
        s.removeListener('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    });
    if (api.startsWith('unix://')) return connected(net.connect(api.slice(7)), 'connect');
    const u = new URL(api.replace(/^tcp:/, 'https:'));
    this.tlsFiles ??= this.ownTls
      ? Promise.all([this.ownTls.ca, this.ownTls.cert, this.ownTls.key].map((f) => fs.readFile(f))).then(([ca, cert, key]) => ({ ca, cert, key }))
      : Promise.resolve({});
    return connected(tls.connect({ ...(await this.tlsFiles), host: u.hostname, port: Number(u.port || 2376) }), 'secureConnect');
  }

  /** A connection to the leader, waiting (bounded) through a switch or a leader that died. */
  private async connect(): Promise<Duplex> {
    const deadline = Date.now() + LEADER_WAIT_MS;
    let unreachable: string | undefined;
    for (;;) {
      const l = await this.leader(deadline - Date.now(), unreachable);
      if (!l) throw unavailable('no cluster leader is known: try again shortly');
      if (l === 'self') throw new ServeHere();
      try {
        return await this.dial(l.api);
      } catch (err) {
        this.log.debug({ leader: l.name, api: l.api, err: errorMessage(err) }, 'the leader did not answer: waiting for the next');
        unreachable = l.api;
      }
    }
  }

  /** Passes a request (and with `upgrade`, the hijacked connection after it) to the leader, or to `serve` if this manager leads by then. */
  forward(req: http.IncomingMessage, res: http.ServerResponse | undefined, upgrade: { socket: Duplex; head: Buffer } | undefined, serve: () => void): void {
    this.inflight++;
    let counted = true;
    const done = () => {
      if (counted) this.inflight--;
      counted = false;
    };
    const run = upgrade ? this.passRaw(req, upgrade.socket, upgrade.head, done) : this.passHttp(req, res!, done);
    run.catch((err: unknown) => {
      done();
      if (err instanceof ServeHere) return serve();
      const body = JSON.stringify({ message: errorMessage(err) });
      if (res) {
        if (!res.headersSent) res.writeHead(statusOf(err), { 'Content-Type': 'application/json' }).end(body);
        else res.destroy();
      } else if (!upgrade!.socket.destroyed) {
        upgrade!.socket.end(`HTTP/1.1 ${statusOf(err)} ${http.STATUS_CODES[statusOf(err)]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      }
    });
  }

  private async passHttp(req: http.IncomingMessage, res: http.ServerResponse, done: () => void): Promise<void> {
    const sock = await this.connect();
    const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => !HOP.has(k)));
    const up = http.request({ createConnection: () => sock as net.Socket, method: req.method, path: req.url, headers: { ...headers, connection: 'close' } });
    await new Promise<void>((resolve, reject) => {
      up.once('error', reject);
      up.once('response', (r) => {
        up.removeListener('error', reject);
        up.on('error', () => res.destroy());
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(r.headers)) if (v !== undefined && !HOP.has(k)) out[k] = v;
        // a body without a length comes as chunks, as it did from the leader
        res.writeHead(r.statusCode ?? 502, out);
        res.flushHeaders();
        r.pipe(res);
        res.once('close', () => {
          up.destroy();
          done();
        });
        resolve();
      });
      req.pipe(up);
      // the client gone before the answer: so is the leader's request
      res.once('close', () => up.destroy());
    });
  }

  private async passRaw(req: http.IncomingMessage, client: Duplex, head: Buffer, done: () => void): Promise<void> {
    const sock = await this.connect();
    let lines = `${req.method} ${req.url} HTTP/1.1\r\n`;
    for (let i = 0; i < req.rawHeaders.length; i += 2) lines += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
    sock.write(lines + '\r\n');
    if (head.length) sock.write(head);
    const close = () => {
      client.destroy();
      sock.destroy();
      done();
    };
    sock.on('error', close);
    client.on('error', close);
    // half-closes pass through: a client that ends stdin still reads the output
    sock.pipe(client).on('finish', close);
    client.pipe(sock);
    client.on('close', close);
  }
}
