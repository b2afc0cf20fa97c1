/** `sampan p2p peer`: the mirror and piece API servers, the piece store, registration with the scheduler. */
import { daemonLogger, daemonStop, type DaemonOptions } from '../../lib/daemon.js';
import type { Logger } from '../../lib/log.js';
import { errorMessage } from '../../lib/errors.js';
import { splitAddr } from '../../lib/units.js';
import { PieceStore } from '../store/index.js';
import type { PeerConfig } from './config.js';
import { PeerMetrics } from './metrics.js';
import { TokenBucket } from './ratelimit.js';
import { SchedulerClient } from './remote.js';
import { Mirror, PieceApi } from './server.js';
import { TaskManager } from './tasks.js';

/** Idle keep-alive of the peer's servers: longer than its clients keep a connection (60 s, remote.ts). */
const KEEP_ALIVE_MS = 65_000;

export interface RunningPeer {
  log: Logger;
  mirrorAddr: { host: string; port: number };
  peerAddr: { host: string; port: number };
  /** Resolves when the peer has stopped. */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

/** HOST:PORT, an empty host being every IPv4 address (as the peer always listened). */
function hostPort(addr: string): [string, number] {
  const { host, port } = splitAddr(addr);
  return [host ?? '0.0.0.0', port];
}

export async function startPeer(c: PeerConfig, opts: DaemonOptions = {}): Promise<RunningPeer> {
  const log = daemonLogger('p2p peer', c.logLevel, opts);
  const metrics = new PeerMetrics();
  const store = new PieceStore({ dir: c.root, maxBytes: c.cacheBytes, log });
  await store.init();
  const scheduler = new SchedulerClient(c.scheduler);
  const self = { peerId: c.peerId, addr: c.advertise, zone: c.zone || undefined, uploadSlots: c.uploadSlots };
  const tasks = new TaskManager({
    self,
    store,
    scheduler,
    metrics,
    log,
    download: new TokenBucket(c.downloadRate),
    concurrency: c.concurrency,
    blockMs: c.blockSeconds * 1000,
    stallMs: c.stallSeconds * 1000,
  });
  const mirror = new Mirror({ upstream: c.upstream, upstreams: new Map(Object.entries(c.upstreams)), tasks, metrics, log });
  const pieces = new PieceApi({ tasks, store, uploadSlots: c.uploadSlots, upload: new TokenBucket(c.uploadRate), metrics, log });
  // a child asks a parent for a piece every few seconds: past Node's 5 s default every request would open a
  // new connection, and at a few per second per peer their setup costs more CPU than the requests
  const mirrorAddr = await mirror.app.listen(...hostPort(c.listen), { keepAliveMs: KEEP_ALIVE_MS });
  const peerAddr = await pieces.app.listen(...hostPort(c.peerListen), { keepAliveMs: KEEP_ALIVE_MS });
  // (re-)register now and then: a restarted scheduler learns of this peer again (for preheat jobs)
  const register = () => void scheduler.register(self).catch((err: unknown) => log.debug({ err: errorMessage(err) }, 'scheduler registration failed'));
  if (c.scheduler) register();
  const timer = c.scheduler ? setInterval(register, 10_000) : undefined;
  timer?.unref();
  log.info({ peerId: c.peerId, mirror: c.listen, peer: c.advertise, scheduler: c.scheduler ?? null, upstream: c.upstream }, 'p2p peer started');
  const { done, shutdown } = daemonStop(
    'p2p peer',
    log,
    {
      halt: () => clearInterval(timer),
      // pulls in flight may finish for a while; long-polls from other peers end at once
      servers: [
        { close: (ms) => mirror.app.close(ms), timeoutMs: 10_000 },
        { close: (ms) => pieces.app.close(ms), timeoutMs: 1000 },
      ],
      release: () => store.close(),
    },
    opts,
  );
  return { log, mirrorAddr, peerAddr, done, shutdown };
}
