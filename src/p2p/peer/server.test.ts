import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger } from '../../lib/log.js';
import { PIECE_ELSEWHERE } from '../protocol.js';
import { PeerMetrics } from './metrics.js';
import { TokenBucket } from './ratelimit.js';
import { PieceApi } from './server.js';
import type { TaskPieces } from './task.js';
import type { TaskManager } from './tasks.js';

const TASK = `sha256:${'a'.repeat(64)}`;
const PIECE = 1024;

/** A blob of `held` pieces in memory; reads of piece n wait for gates[n] when one is set. */
class FakePieces extends EventEmitter {
  meta = { size: 8 * PIECE, pieceSize: PIECE, pieceDigests: [] as string[] };
  complete = false;
  gates = new Map<number, Promise<void>>();
  reads: number[] = [];
  constructor(private readonly heldList: number[]) {
    super();
  }
  has(n: number) {
    return this.heldList.includes(n);
  }
  held() {
    return [...this.heldList];
  }
  count() {
    return this.heldList.length;
  }
  pieceDigest() {
    return undefined;
  }
  async readPiece(n: number) {
    this.reads.push(n);
    await this.gates.get(n);
    return Buffer.alloc(PIECE, n);
  }
}

async function serve(pieces: FakePieces, role: 'seed' | 'child', uploadSlots: number) {
  const metrics = new PeerMetrics();
  const tasks = { running: (id: string) => (id === TASK ? { role } : undefined) } as unknown as TaskManager;
  const store = { task: (id: string) => (id === TASK ? (pieces as unknown as TaskPieces) : undefined), tasksList: () => [] };
  const api = new PieceApi({ tasks, store, uploadSlots, upload: new TokenBucket(0), metrics, log: createLogger('test', 'silent') });
  const server = http.createServer(api.app.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/p2p/v1/tasks/${TASK}`;
  return { api, server, metrics, base };
}

function stop(server: http.Server): void {
  server.closeAllConnections();
  server.close();
}

async function get(url: string): Promise<{ status: number; code?: string; bytes: number }> {
  const res = await fetch(url);
  const body = Buffer.from(await res.arrayBuffer());
  if (res.status === 200 && res.headers.get('content-type') === 'application/octet-stream') return { status: 200, bytes: body.length };
  return { status: res.status, code: (JSON.parse(body.toString()) as { error?: { code?: string } }).error?.code, bytes: body.length };
}

const answer = (r: { status: number; code?: string }) => [r.status, r.code];

describe('piece API: a seed still downloading sends each piece once (super-seeding)', () => {
  const pieces = new FakePieces([0, 1, 2]);
  let s: Awaited<ReturnType<typeof serve>>;
  before(async () => (s = await serve(pieces, 'seed', 4)));
  after(() => stop(s.server));

  it('points a second request for a piece elsewhere while it holds pieces nobody got yet', async () => {
    assert.equal((await get(`${s.base}/pieces/0`)).status, 200);
    assert.deepEqual(answer(await get(`${s.base}/pieces/0`)), [503, PIECE_ELSEWHERE]);
    assert.equal((await get(`${s.base}/pieces/1`)).status, 200);
    assert.equal((await get(`${s.base}/pieces/2`)).status, 200);
    // every piece went out once: repeats are served again
    assert.equal((await get(`${s.base}/pieces/0`)).status, 200);
    assert.equal((await s.metrics.declined.get()).values[0]?.value, 1);
  });

  it('serves repeats freely once its blob is complete, or as a child', async () => {
    pieces.complete = true;
    for (let i = 0; i < 2; i++) assert.equal((await get(`${s.base}/pieces/1`)).status, 200);
    const child = await serve(new FakePieces([0, 1, 2]), 'child', 4);
    try {
      for (let i = 0; i < 3; i++) assert.equal((await get(`${child.base}/pieces/0`)).status, 200);
    } finally {
      stop(child.server);
    }
  });
});

describe('piece API: upload slots', () => {
  it('queues one request per busy slot and answers 503 BUSY beyond that', async () => {
    const pieces = new FakePieces([0, 1, 2]);
    let open!: () => void;
    pieces.gates.set(0, new Promise<void>((r) => (open = r)));
    const s = await serve(pieces, 'child', 1);
    try {
      const first = get(`${s.base}/pieces/0`);
      while (!pieces.reads.includes(0)) await new Promise((r) => setTimeout(r, 5));
      const queued = get(`${s.base}/pieces/1`);
      while ((s.api as unknown as { waiting: unknown[] }).waiting.length === 0) await new Promise((r) => setTimeout(r, 5));
      assert.deepEqual(answer(await get(`${s.base}/pieces/2`)), [503, 'BUSY']);
      assert.equal(pieces.reads.includes(1), false, 'the queued request waits for the slot');
      open();
      assert.deepEqual(await first, { status: 200, bytes: PIECE });
      assert.deepEqual(await queued, { status: 200, bytes: PIECE });
      assert.equal((await get(`${s.base}/pieces/2`)).status, 200);
    } finally {
      stop(s.server);
    }
  });
});
