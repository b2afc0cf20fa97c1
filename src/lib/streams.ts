/**
 * Streams sent to clients that may go away at any moment: a reader that stops reading and closes is a normal
 * end, never an error that escapes (a stream's 'error' without a listener would take the whole process down).
 */
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';

/** Error codes that only say the other end closed: Node's streams, sockets, and streamx (tar-stream). */
const GONE = new Set(['ERR_STREAM_PREMATURE_CLOSE', 'PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED', 'STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END', 'EPIPE', 'ECONNRESET', 'ECONNABORTED']);

/** Whether `err` only says that the peer of a stream went away, or that work was aborted because it did. */
export function isPeerGone(err: unknown): boolean {
  const e = err as { code?: unknown; name?: unknown } | null | undefined;
  return (typeof e?.code === 'string' && GONE.has(e.code)) || e?.name === 'AbortError';
}

/**
 * Send `source` to `sink` (a response, a socket). Either end failing destroys both, so a client that goes away
 * frees what the source held (files, tar packers, upstream requests). True when everything was sent, false when
 * the client went away first; a failure of the source rejects.
 */
export async function sendStream(source: Readable, sink: Writable): Promise<boolean> {
  try {
    await pipeline(source, sink);
    return true;
  } catch (err) {
    if (isPeerGone(err)) return false;
    throw err;
  }
}

/** Resolves once `w` takes more ('drain'); rejects, as a premature close, when it closes first (its reader left). */
export function drained(w: Writable): Promise<void> {
  const gone = () => Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
  if (w.destroyed) return Promise.reject(gone());
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      w.off('drain', onDrain);
      w.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onClose = () => done(gone());
    w.on('drain', onDrain);
    w.on('close', onClose);
  });
}

export type EntryHeader = Partial<tar.Header> & { name: string };

/** One tar entry: a Buffer, or a stream piped so that a failure of either (the pack destroyed) destroys both. */
export async function packEntry(pack: tar.Pack, header: EntryHeader, body: Buffer | Readable = Buffer.alloc(0)): Promise<void> {
  let done!: (err?: Error | null) => void;
  const written = new Promise<void>((resolve, reject) => (done = (err) => (err ? reject(err) : resolve())));
  if (!(body instanceof Readable)) {
    pack.entry(header, body, done);
    return written;
  }
  let sink: Writable;
  try {
    // a streamx Writable, which Node's pipeline() handles like its own
    sink = pack.entry(header, done) as unknown as Writable;
  } catch (err) {
    // the pack is gone already: the body's file must not stay open
    body.destroy();
    throw err;
  }
  await Promise.all([pipeline(body, sink), written]);
}

/**
 * Run `write` into a fresh tar pack, read as a Node stream. Destroying that stream (its reader gone) destroys the
 * pack, which fails the entry being written and so ends `write`; a failure of `write` fails the stream.
 */
export function packStream(write: (pack: tar.Pack) => Promise<void>): Readable {
  const pack = tar.pack();
  void write(pack).then(
    () => pack.finalize(),
    (err: unknown) => pack.destroy(err instanceof Error ? err : new Error(String(err))),
  );
  return Readable.from(pack, { objectMode: false });
}
