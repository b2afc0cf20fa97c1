/**
 * A relay link: one WebSocket between a node relay (`sampan cluster relay`) and a manager that carries the node
 * connections of many engines, so a manager holds one socket per relay rather than one per engine (a process has a
 * bounded number of file descriptors: 20,000 on the machines this runs on, fewer than the hosts of a large cluster).
 * Binary frames: a kind byte, the engine connection's number (uint32, the relay's), then the payload:
 * OPEN (an engine connected), MESSAGE (one node-protocol message, as the engine or manager sent it), CLOSE (JSON
 * {code, reason}: either side hung up). On the manager, each engine connection is a `RelayedSocket` that the node
 * registry accepts like any engine's WebSocket.
 */
import { EventEmitter } from 'node:events';
import type { WebSocket } from 'ws';

export const FRAME_OPEN = 1;
export const FRAME_MESSAGE = 2;
export const FRAME_CLOSE = 3;
/** The path a relay dials on a manager's node endpoint. */
export const RELAY_PATH = '/relay';

export function frame(kind: number, conn: number, payload: Buffer | string = ''): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const head = Buffer.allocUnsafe(5);
  head.writeUInt8(kind, 0);
  head.writeUInt32BE(conn, 1);
  return Buffer.concat([head, body]);
}

export function unframe(data: Buffer): { kind: number; conn: number; payload: Buffer } {
  if (data.length < 5) throw new Error('relay frame too short');
  return { kind: data.readUInt8(0), conn: data.readUInt32BE(1), payload: data.subarray(5) };
}

export const closePayload = (code: number, reason: string) => JSON.stringify({ code, reason: reason.slice(0, 120) });
export function parseClose(payload: Buffer): { code: number; reason: string } {
  try {
    const c = JSON.parse(payload.toString('utf8')) as { code?: unknown; reason?: unknown };
    return { code: typeof c.code === 'number' ? c.code : 1006, reason: typeof c.reason === 'string' ? c.reason : '' };
  } catch {
    return { code: 1006, reason: '' };
  }
}

/** What the node registry uses of an engine's connection: a WebSocket, or one carried by a relay link. */
export type NodeSocket = Pick<WebSocket, 'send' | 'close' | 'terminate' | 'readyState' | 'on'>;

const OPEN = 1;
const CLOSED = 3;

/** An engine's connection carried by a relay link, on the manager's side. */
class RelayedSocket extends EventEmitter {
  readyState = OPEN;

  /** What waits on the relay link this connection shares: an engine behind a slow relay is behind too. */
  get bufferedAmount(): number {
    return this.link.bufferedAmount;
  }

  constructor(
    private readonly link: WebSocket,
    private readonly conn: number,
    private readonly gone: (conn: number) => void,
  ) {
    super();
  }

  send(data: string): void {
    if (this.readyState === OPEN && this.link.readyState === OPEN) this.link.send(frame(FRAME_MESSAGE, this.conn, data));
  }

  close(code = 1000, reason = ''): void {
    if (this.readyState !== OPEN) return;
    if (this.link.readyState === OPEN) this.link.send(frame(FRAME_CLOSE, this.conn, closePayload(code, reason)));
    this.closed(code, reason);
  }

  terminate(): void {
    this.close(1006, 'terminated');
  }

  /** The engine (or the whole link) hung up. */
  closed(code: number, reason: string): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    this.gone(this.conn);
    this.emit('close', code, Buffer.from(reason));
  }
}

/** Serves a relay link: each engine connection it opens is handed to `accept` as a socket of its own. */
export function serveRelayLink(link: WebSocket, accept: (s: NodeSocket) => void, onError: (err: Error) => void): void {
  const conns = new Map<number, RelayedSocket>();
  const drop = (conn: number) => conns.delete(conn);
  link.on('message', (data: Buffer, isBinary: boolean) => {
    let f: ReturnType<typeof unframe>;
    try {
      if (!isBinary) throw new Error('a relay link carries binary frames');
      f = unframe(data);
    } catch (err) {
      onError(err as Error);
      link.terminate();
      return;
    }
    if (f.kind === FRAME_OPEN) {
      conns.get(f.conn)?.closed(1006, 'reopened');
      const s = new RelayedSocket(link, f.conn, drop);
      conns.set(f.conn, s);
      accept(s as unknown as NodeSocket);
    } else if (f.kind === FRAME_MESSAGE) conns.get(f.conn)?.emit('message', f.payload, false);
    else if (f.kind === FRAME_CLOSE) {
      const { code, reason } = parseClose(f.payload);
      conns.get(f.conn)?.closed(code, reason);
    }
  });
  link.on('error', onError);
  link.on('close', () => {
    for (const s of [...conns.values()]) s.closed(1006, 'relay link lost');
  });
}
