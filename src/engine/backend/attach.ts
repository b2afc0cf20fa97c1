import type { Duplex } from 'node:stream';
import { AttachConnection } from '../containers/attach.js';
import { frame } from '../../lib/stdcopy.js';
import { EscapeProxy } from '../containers/detach.js';

export interface AttachStreams {
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  /** The detach sequence (parseDetachKeys): typed into stdin, it ends the session and leaves the process running. */
  detachKeys: Buffer;
}

/**
 * Connect conmon's attach socket to a hijacked client connection. Resolves with the connection once it is
 * established; `done` resolves when the process's output ends, the client goes away or detaches (then to true).
 */
export async function bridgeAttach(socketPath: string, client: Duplex, s: AttachStreams): Promise<{ done: Promise<boolean> }> {
  const conn = await AttachConnection.connect(socketPath);
  conn.on('data', (stream: 1 | 2, buf: Buffer) => {
    if (client.destroyed) return;
    if (stream === 1 && !s.stdout) return;
    if (stream === 2 && !s.stderr) return;
    client.write(s.tty ? buf : frame(stream, buf));
  });
  const proxy = new EscapeProxy(s.detachKeys);
  if (s.stdin) {
    client.on('data', (d: Buffer) => {
      const input = proxy.filter(d);
      if (input.length) conn.write(input);
      if (proxy.detached) conn.close();
    });
    client.on('end', () => conn.endInput());
  }
  const onClientClose = () => conn.close();
  client.on('close', onClientClose);
  const done = new Promise<boolean>((resolve) => conn.once('close', () => {
    client.off('close', onClientClose);
    resolve(proxy.detached);
  }));
  return { done };
}
