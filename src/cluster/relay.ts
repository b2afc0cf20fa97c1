/**
 * `sampan cluster relay`: a node relay. Engines join it exactly as they join a manager (`--join` its address); it
 * carries all their connections to one manager over a single relay link (relay-link.ts), so the manager holds a
 * socket per relay instead of one per engine. It keeps no state: the manager checks every engine's hello (token
 * included) as if the engine had come directly. When the link drops, the relay hangs up on its engines (they come
 * back with their backoff) and redials the manager with backoff and jitter.
 */
import http from 'node:http';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { WebSocket, WebSocketServer } from 'ws';
import { errorMessage } from '../lib/errors.js';
import { gracefulStop } from '../lib/lifecycle.js';
import type { Logger } from '../lib/log.js';
import { CLOSE_SHUTDOWN, nodeDialUrl } from '../lib/node-protocol.js';
import { FRAME_CLOSE, FRAME_MESSAGE, FRAME_OPEN, RELAY_PATH, closePayload, frame, parseClose, unframe } from './relay-link.js';

const BACKOFF_MIN_MS = 200;
const BACKOFF_MAX_MS = 10_000;
/** WebSocket's "try again later": the link to the manager is down. */
const CLOSE_TRY_AGAIN = 1013;

/** Codes a close frame may carry; the others (1005, 1006: no frame at all) are a cut connection. */
const SENDABLE = (code: number) => (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);

function closeEngine(e: WebSocket, code: number, reason: string): void {
  if (SENDABLE(code)) e.close(code, reason);
  else e.terminate();
}

export interface RelayOptions {
  /** The manager's node endpoint (what an engine would --join). */
  manager: string;
  /** Where engines join the relay: unix:///PATH or ws://127.0.0.1:PORT. */
  listen: string;
}

export interface RunningRelay {
  done: Promise<void>;
  shutdown(): Promise<void>;
  /** Engine connections carried now. */
  readonly engines: number;
}

export async function startRelay(o: RelayOptions, log: Logger, opts: { handleSignals?: boolean } = {}): Promise<RunningRelay> {
  const engines = new Map<number, WebSocket>();
  let next = 0;
  let link: WebSocket | undefined;
  let stopping = false;
  let attempt = 0;
  let retry: NodeJS.Timeout | undefined;
  const linkUrl = nodeDialUrl(o.manager).replace(/\/?$/, RELAY_PATH);

  const dial = (): void => {
    if (stopping) return;
    const ws = new WebSocket(linkUrl, { maxPayload: 64 << 20 });
    ws.on('open', () => {
      attempt = 0;
      link = ws;
      log.info({ manager: o.manager }, 'relay link up');
    });
    ws.on('message', (data: Buffer) => {
      let f: ReturnType<typeof unframe>;
      try {
        f = unframe(data);
      } catch (err) {
        log.warn({ err: errorMessage(err) }, 'bad frame from the manager');
        return;
      }
      const e = engines.get(f.conn);
      if (!e) return;
      if (f.kind === FRAME_MESSAGE) e.send(f.payload, { binary: false });
      else if (f.kind === FRAME_CLOSE) {
        const { code, reason } = parseClose(f.payload);
        engines.delete(f.conn);
        closeEngine(e, code, reason);
      }
    });
    ws.on('error', (err) => log.debug({ err: err.message }, 'relay link error'));
    ws.on('close', (code, reason) => {
      if (link === ws) link = undefined;
      // the engines' sessions lived on that link: they rejoin through the next one
      for (const e of engines.values()) e.close(code === CLOSE_SHUTDOWN ? CLOSE_SHUTDOWN : CLOSE_TRY_AGAIN, 'relay link to the manager lost');
      engines.clear();
      if (stopping) return;
      const ms = Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt++);
      log.warn({ manager: o.manager, code, reason: reason.toString(), retryMs: Math.round(ms) }, 'relay link down');
      retry = setTimeout(dial, ms);
    });
  };

  const server = http.createServer((_req, res) => res.writeHead(426).end('the node relay speaks WebSocket\n'));
  const wss = new WebSocketServer({ server, maxPayload: 64 << 20 });
  wss.on('connection', (ws) => {
    const l = link;
    if (!l || l.readyState !== WebSocket.OPEN) {
      ws.close(CLOSE_TRY_AGAIN, 'the relay has no link to the manager');
      return;
    }
    const conn = (next = (next + 1) >>> 0);
    engines.set(conn, ws);
    l.send(frame(FRAME_OPEN, conn));
    ws.on('message', (data: Buffer) => {
      if (link === l && l.readyState === WebSocket.OPEN) l.send(frame(FRAME_MESSAGE, conn, data));
    });
    ws.on('error', (err) => log.debug({ err: err.message }, 'engine connection error'));
    ws.on('close', (code, reason) => {
      if (engines.get(conn) !== ws) return;
      engines.delete(conn);
      if (link === l && l.readyState === WebSocket.OPEN) l.send(frame(FRAME_CLOSE, conn, closePayload(code, reason.toString())));
    });
  });
  const listening = new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.once('listening', resolve);
  });
  if (o.listen.startsWith('unix://')) {
    const p = o.listen.slice(7);
    await fs.mkdir(path.dirname(p), { recursive: true });
    await fs.rm(p, { force: true });
    server.listen(p);
  } else {
    const u = new URL(o.listen);
    server.listen(Number(u.port), u.hostname.replace(/^\[(.*)\]$/, '$1'));
  }
  await listening;
  server.on('error', (err) => log.error({ err: err.message }, 'relay endpoint error'));
  if (o.listen.startsWith('unix://')) await fs.chmod(o.listen.slice(7), 0o660);
  dial();
  log.info({ listen: o.listen, manager: o.manager }, 'node relay started');

  const { done, shutdown } = gracefulStop(async () => {
    stopping = true;
    clearTimeout(retry);
    for (const e of engines.values()) e.close(CLOSE_SHUTDOWN, 'relay shutting down');
    link?.close();
    wss.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    if (o.listen.startsWith('unix://')) await fs.rm(o.listen.slice(7), { force: true });
    log.info('node relay stopped');
    log.flush();
  }, opts);
  return { done, shutdown, get engines() { return engines.size; } };
}
