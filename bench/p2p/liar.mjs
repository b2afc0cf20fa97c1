#!/usr/bin/env node
// A corrupt peer for bench/p2p/run.sh: once the task's seed has reported its pieces' digests to the scheduler,
// it announces itself as a finished peer holding every piece (so the scheduler ranks it first as a parent),
// then answers every piece request with noise at full speed. GET /stats: {"lies": n, "bytes": b}.
// Usage: node liar.mjs --listen HOST:PORT --advertise URL --scheduler URL --task sha256:... --url BLOB_URL [--slots N]
import http from 'node:http';
import { randomBytes } from 'node:crypto';

const arg = (k, d) => {
  const i = process.argv.indexOf(`--${k}`);
  return i > 0 ? process.argv[i + 1] : d;
};
const [host, port] = arg('listen', '0.0.0.0:65002').split(/:(?=\d+$)/);
const advertise = arg('advertise');
const scheduler = arg('scheduler').replace(/\/+$/, '');
const task = arg('task');
const url = arg('url');
const slots = Number(arg('slots', '32'));
const log = (m) => process.stderr.write(`[liar ${new Date().toISOString()}] ${m}\n`);

let meta; // {size, pieceSize, pieces}
let noise;
let lies = 0;
let bytes = 0;
let announced = false;

const server = http.createServer((req, res) => {
  const u = new URL(req.url ?? '/', 'http://liar');
  if (u.pathname === '/stats') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ lies, bytes, announced }));
  if (u.pathname === '/healthz') return void res.writeHead(200).end('ok');
  if (!meta) return void res.writeHead(404).end();
  const m = /\/pieces\/(\d+)$/.exec(u.pathname);
  if (m) {
    const n = Number(m[1]);
    const len = Math.max(0, Math.min(meta.pieceSize, meta.size - n * meta.pieceSize));
    lies++;
    bytes += len;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': len, 'x-piece-digest': 'f'.repeat(64) });
    return void res.end(noise.subarray(0, len));
  }
  const view = { meta: { size: meta.size, pieceSize: meta.pieceSize, pieceDigests: [] }, pieces: [...Array(meta.pieces).keys()], complete: true };
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(view));
});
server.listen(Number(port), host, () => log(`listening on ${host}:${port}, advertised as ${advertise}`));

async function main() {
  // wait for the seed's digests: announcing earlier would make the liar the task's seed
  for (;;) {
    try {
      const r = await fetch(`${scheduler}/api/v1/tasks/${task}`);
      if (r.ok) {
        const v = await r.json();
        if (v.meta && v.meta.digestsKnown > 0) {
          meta = v.meta;
          break;
        }
      }
    } catch {
      /* the scheduler is not up yet */
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  noise = randomBytes(meta.pieceSize);
  const body = { peerId: 'liar', addr: advertise, url, uploadSlots: slots, pieces: [...Array(meta.pieces).keys()], finished: true };
  const r = await fetch(`${scheduler}/api/v1/tasks/${task}/announce`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  announced = r.ok;
  log(`announced as finished with ${meta.pieces} pieces of ${meta.pieceSize} bytes: ${r.status} ${(await r.text()).slice(0, 200)}`);
}
main().catch((err) => {
  log(`failed: ${err.stack ?? err}`);
  process.exit(1);
});
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => {
  log(`stopping: ${lies} corrupt pieces served (${bytes} bytes)`);
  process.exit(0);
});
