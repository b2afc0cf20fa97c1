/**
 * Worker thread side of ExtractPool: unpacks one layer at a time with extractLayer (decompression, diff ID
 * hashing, tar parsing and file writes all happen here, off the engine's main thread).
 * Messages in: start {dest, overlayWhiteouts, devices}, data {chunk}, end, abort {message}.
 * Messages out: ack (a chunk was taken: send another), done {result}, error {code, message}.
 */
import { parentPort } from 'node:worker_threads';
import { Readable } from 'node:stream';
import { extractLayer } from '../../lib/tarsafe.js';
import { SampanError, errorMessage } from '../../lib/errors.js';

type In =
  | { type: 'start'; dest: string; overlayWhiteouts: boolean; devices?: boolean }
  | { type: 'data'; chunk: Uint8Array }
  | { type: 'end' }
  | { type: 'abort'; message: string };

const port = parentPort!;
let queue: Buffer[] = [];
let ended = false;
let aborted: Error | undefined;
let wake: (() => void) | undefined;

async function* chunks(): AsyncGenerator<Buffer> {
  for (;;) {
    while (queue.length === 0 && !ended && !aborted) await new Promise<void>((r) => (wake = r));
    if (aborted) throw aborted;
    const c = queue.shift();
    if (!c) return;
    port.postMessage({ type: 'ack' });
    yield c;
  }
}

port.on('message', (m: In) => {
  switch (m.type) {
    case 'start': {
      queue = [];
      ended = false;
      aborted = undefined;
      const input = Readable.from(chunks(), { objectMode: false, highWaterMark: 1 << 20 });
      extractLayer(input, m.dest, { overlayWhiteouts: m.overlayWhiteouts, devices: m.devices }).then(
        (result) => port.postMessage({ type: 'done', result }),
        (err: unknown) => {
          input.destroy();
          port.postMessage({ type: 'error', code: err instanceof SampanError ? err.code : 'INTERNAL', message: errorMessage(err) });
        },
      );
      return;
    }
    case 'data':
      queue.push(Buffer.from(m.chunk.buffer, m.chunk.byteOffset, m.chunk.byteLength));
      break;
    case 'end':
      ended = true;
      break;
    case 'abort':
      aborted = new Error(m.message);
      break;
  }
  wake?.();
  wake = undefined;
});
