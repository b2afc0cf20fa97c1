import { SeqpacketSocket } from 'node-unix-socket';
import { EventEmitter } from 'node:events';

/** conmon's attach socket tags every packet with the pipe it came from. */
const PIPE_STDOUT = 2;
const PIPE_STDERR = 3;
/** conmon reads stdin in packets of at most this size (its STDIO_BUF_SIZE). */
const MAX_PACKET = 8192;

/**
 * A client of conmon's SOCK_SEQPACKET attach socket: output arrives as ('data', stream, bytes),
 * input is written in packets; 'close' when conmon ends the stream (the process exited).
 */
export class AttachConnection extends EventEmitter {
  private readonly sock: SeqpacketSocket;
  private closed = false;

  private constructor(sock: SeqpacketSocket) {
    super();
    this.sock = sock;
    sock.on('data', (buf: Buffer) => {
      if (buf.length < 1) return;
      const stream = buf[0] === PIPE_STDOUT ? 1 : buf[0] === PIPE_STDERR ? 2 : 0;
      if (stream) this.emit('data', stream, buf.subarray(1));
    });
    const done = () => {
      if (this.closed) return;
      this.closed = true;
      this.emit('close');
    };
    sock.on('end', done);
    sock.on('close', done);
    sock.on('error', done);
  }

  static connect(path: string): Promise<AttachConnection> {
    return new Promise((resolve, reject) => {
      const sock = new SeqpacketSocket();
      const onErr = (e: Error) => reject(e);
      sock.once('error', onErr);
      try {
        sock.connect(path, () => {
          sock.off('error', onErr);
          resolve(new AttachConnection(sock));
        });
      } catch (e) {
        reject(e as Error);
      }
    });
  }

  write(data: Buffer): void {
    if (this.closed) return;
    for (let i = 0; i < data.length; i += MAX_PACKET) this.sock.write(data.subarray(i, i + MAX_PACKET));
  }

  /** Half-close: conmon then closes the container's stdin (unless told to keep it open). */
  endInput(): void {
    if (!this.closed) this.sock.end();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.destroy();
    this.emit('close');
  }
}
