/**
 * Clients that walk away from a peer's streams (issue 14, finding 1): runtimes dropping blob downloads from the
 * peer's mirror (blobs it holds, and blobs still coming in), other peers dropping piece downloads. 50 of each; the
 * peer still answers, holds no more open files than before and starts no processes that stay.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { P2pRig, type Peer } from './harness.js';
import { abandon, holdings, leftOver, type AbandonRequest } from '../abandon.js';

const ROUNDS = 50;
const MiB = 1024 * 1024;

let rig: P2pRig;
let peer: Peer;

before(async () => {
  rig = await P2pRig.start();
  peer = await rig.startPeer();
});
after(async () => {
  await rig?.stop();
});

async function abandonRounds(port: number, req: (i: number) => AbandonRequest): Promise<void> {
  const pid = peer.proc.pid!;
  const before = await holdings(pid);
  for (let i = 0; i < ROUNDS; i++) {
    const status = await abandon({ host: '127.0.0.1', port }, req(i));
    assert.match(status, /^HTTP\/1\.1 20[06] /, `round ${i}`);
  }
  assert.equal((await fetch(`${peer.url}/healthz`)).status, 200, `the peer stopped answering:\n${peer.log.slice(-3000)}`);
  assert.deepEqual(await leftOver(pid, before), []);
}

test('blob downloads from the peer\'s mirror (held, whole and ranged), abandoned; the blob still reads whole after', async () => {
  const blob = await rig.pushBlob('abandon/held', 24 * MiB);
  assert.equal((await peer.pull('abandon/held', blob.digest)).digest, blob.digest);
  await abandonRounds(peer.port, (i) => ({ path: `/v2/abandon/held/blobs/${blob.digest}`, headers: i % 2 ? { Range: 'bytes=4096-' } : undefined }));
  assert.equal((await peer.pull('abandon/held', blob.digest)).digest, blob.digest);
});

test('blob downloads from the peer\'s mirror while the blob still comes in, abandoned; each reads whole after', async () => {
  const blobs: Array<{ digest: string }> = [];
  for (let i = 0; i < ROUNDS; i++) blobs.push(await rig.pushBlob('abandon/coming', 2 * MiB));
  await abandonRounds(peer.port, (i) => ({ path: `/v2/abandon/coming/blobs/${blobs[i]!.digest}` }));
  for (const b of blobs.slice(0, 5)) assert.equal((await peer.pull('abandon/coming', b.digest)).digest, b.digest);
});

test('piece downloads by other peers, abandoned', async () => {
  const blob = await rig.pushBlob('abandon/pieces', 16 * MiB);
  assert.equal((await peer.pull('abandon/pieces', blob.digest)).digest, blob.digest);
  const held = await peer.holds(blob.digest);
  assert.ok(held?.complete);
  await abandonRounds(peer.peerPort, (i) => ({ path: `/p2p/v1/tasks/${blob.digest}/pieces/${i % held.pieces}` }));
});
