import type { Duplex } from 'node:stream';
import { AttachConnection } from '../containers/attach.js';
import { frame } from './http.js';

export interface AttachStreams {
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

/**
 * Connect conmon's attach socket to a hijacked client connection. Resolves with the connection once it is
 * established; `done` resolves when the process's output ends or the client goes away.
 */
export async function bridgeAttach(socketPath: string, client: Duplex, s: AttachStreams): Promise<{ done: Promise<void> }> {
  const conn = await AttachConnection.connect(socketPath);
  conn.on('data', (stream: 1 | 2, buf: Buffer) => {
    if (client.destroyed) return;
    if (stream === 1 && !s.stdout) return;
    if (stream === 2 && !s.stderr) return;
    client.write(s.tty ? buf : frame(stream, buf));
  });
  if (s.stdin) {
    client.on('data', (d: Buffer) => conn.write(d));
    client.on('end', () => conn.endInput());
  }
  const onClientClose = () => conn.close();
  client.on('close', onClientClose);
  const done = new Promise<void>((resolve) => conn.once('close', () => {
    client.off('close', onClientClose);
    resolve();
  }));
  return { done };
}
