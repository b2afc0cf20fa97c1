import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { WebSocket, WebSocketServer } from 'ws';
import { createLogger } from '../lib/log.js';
import { FRAME_CLOSE, FRAME_MESSAGE, FRAME_OPEN, RELAY_PATH, closePayload, frame, unframe } from './relay-link.js';
import { startRelay } from './relay.js';

test('a relay carries engines\' messages both ways; a manager that cuts an engine (terminate: code 1006) cuts it alone', { timeout: 20_000 }, async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sp-relay-'));
  const server = http.createServer();
  const wss = new WebSocketServer({ server });
  const got: Array<{ kind: number; conn: number; text: string }> = [];
  let link: WebSocket | undefined;
  wss.on('connection', (ws, req) => {
    assert.equal(req.url, RELAY_PATH);
    link = ws;
    ws.on('message', (d: Buffer) => {
      const f = unframe(d);
      got.push({ kind: f.kind, conn: f.conn, text: f.payload.toString() });
    });
  });
  await new Promise<void>((r) => server.listen(path.join(dir, 'manager.sock'), r));
  const relay = await startRelay({ manager: `unix://${path.join(dir, 'manager.sock')}`, listen: `unix://${path.join(dir, 'relay.sock')}` }, createLogger('test', 'fatal'), { handleSignals: false });
  const until = async (ok: () => boolean) => {
    for (let i = 0; i < 300 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(ok());
  };
  try {
    await until(() => !!link);
    const engine = async () => {
      const ws = new WebSocket(`ws+unix://${path.join(dir, 'relay.sock')}:/`);
      const heard: string[] = [];
      ws.on('message', (d) => heard.push(String(d)));
      await new Promise((r) => ws.once('open', r));
      return { ws, heard, closed: new Promise<number>((r) => ws.once('close', (code) => r(code))) };
    };
    const a = await engine();
    const b = await engine();
    await until(() => got.filter((g) => g.kind === FRAME_OPEN).length === 2);
    const [ca, cb] = got.filter((g) => g.kind === FRAME_OPEN).map((g) => g.conn);
    a.ws.send('{"type":"hello"}');
    await until(() => got.some((g) => g.kind === FRAME_MESSAGE && g.conn === ca && g.text === '{"type":"hello"}'));
    link!.send(frame(FRAME_MESSAGE, cb!, '{"type":"welcome"}'));
    await until(() => b.heard.includes('{"type":"welcome"}'));
    // what the manager's sweep does to a silent node: no close frame, the connection cut
    link!.send(frame(FRAME_CLOSE, ca!, closePayload(1006, 'terminated')));
    assert.equal(await a.closed, 1006);
    link!.send(frame(FRAME_MESSAGE, cb!, '{"type":"still"}'));
    await until(() => b.heard.includes('{"type":"still"}'));
    assert.equal(relay.engines, 1);
    b.ws.close();
  } finally {
    await relay.shutdown();
    wss.close();
    server.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});
