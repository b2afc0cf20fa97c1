/** Helpers for the auth unit tests (not used by the registry itself). */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import bcrypt from 'bcryptjs';
import { pino, type Logger } from 'pino';

/** A pino logger whose records land in `lines` (parsed). */
export function captureLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, stream), lines };
}

/** An in-memory authenticator over bcrypt hashes (cost 4, for speed). */
export function usersOf(users: Record<string, string>): { verify(user: string, password: string): Promise<boolean> } {
  const hashes = new Map(Object.entries(users).map(([u, p]) => [u, bcrypt.hashSync(p, 4)]));
  return { verify: async (u, p) => hashes.has(u) && bcrypt.compare(p, hashes.get(u)!) };
}

/** Serve `handler` on 127.0.0.1 (port chosen by the system) for a test. */
export async function serve(handler: (req: IncomingMessage, res: ServerResponse) => unknown): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    void Promise.resolve(handler(req, res)).catch((err: unknown) => {
      res.statusCode = 500;
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** base64url JSON, for hand-made JWTs. */
export const b64json = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
