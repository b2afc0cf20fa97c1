/** The Docker API's exec backend over this host's exec sessions (docker exec). */
import type { Duplex } from 'node:stream';
import type { ExecBackend, Output } from '../../docker-api/index.js';
import type { ExecCreateRequest, ExecInspect, ExecStartRequest, IdResponse } from '../../lib/docker-types.js';
import type { Engine } from '../engine.js';
import type { ExecConfig } from '../containers/exec.js';
import { DEFAULT_DETACH_KEYS, parseDetachKeys } from '../containers/detach.js';
import { bridgeAttach } from './attach.js';
import { MUX, RAW } from './containers.js';

export class EngineExec implements ExecBackend {
  constructor(private readonly e: Engine) {}

  async create(container: string, body: Partial<ExecCreateRequest>): Promise<IdResponse> {
    return this.e.execs.create(container, body as ExecConfig);
  }

  async start(id: string, o: ExecStartRequest, out: Output): Promise<void> {
    const execs = this.e.execs;
    const ex = execs.get(id);
    const cfg = ex.config;
    // detached: nothing to stream, the layer answers a plain 200
    if (o.Detach) {
      await execs.start(ex.id, true);
      return;
    }
    let client: Duplex | undefined;
    let output = Promise.resolve(false);
    const detachKeys = parseDetachKeys(cfg.DetachKeys ?? DEFAULT_DETACH_KEYS);
    // as in Docker, the start request's Tty decides the framing, whatever the session's terminal
    const tty = !!o.Tty;
    const { exited } = await execs.start(
      ex.id,
      false,
      async (sock) => {
        client = out.hijack(tty ? RAW : MUX);
        const { done } = await bridgeAttach(sock, client, { tty, stdin: !!cfg.AttachStdin, stdout: cfg.AttachStdout !== false, stderr: cfg.AttachStderr !== false, detachKeys });
        output = done;
      },
      o.ConsoleSize,
    );
    // the CLI reads the exit code right after the stream ends: have it recorded first (unless it detached)
    if (!(await output)) {
      // a client gone without detaching leaves nobody to read, feed or end the session: kill it rather than leave
      // it running for nobody (dockerd does leave it, until its output pipe fills and it blocks for good)
      out.signal.addEventListener('abort', () => execs.kill(ex.id), { once: true });
      if (out.signal.aborted) execs.kill(ex.id);
      await exited;
    }
    if (client && !client.destroyed) client.end();
  }

  async inspect(id: string): Promise<ExecInspect> {
    return this.e.execs.inspect(id) as unknown as ExecInspect;
  }

  resize(id: string, h: number, w: number): Promise<void> {
    return this.e.execs.resize(id, h, w);
  }
}
