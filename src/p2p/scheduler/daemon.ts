/** `sampan p2p scheduler`: state, preheat jobs, the HTTP API, housekeeping timers and a graceful stop. */
import { daemonLogger, daemonStop, type DaemonOptions } from '../../lib/daemon.js';
import type { Logger } from '../../lib/log.js';
import type { SchedulerConfig } from './config.js';
import { SchedulerMetrics } from './metrics.js';
import { PreheatManager, type PreheatOptions } from './preheat.js';
import { schedulerApp } from './server.js';
import { SchedulerState } from './state.js';
import { splitAddr } from '../../lib/units.js';

export interface RunningScheduler {
  state: SchedulerState;
  preheat: PreheatManager;
  log: Logger;
  /** Where it listens (the real port when the config asked for port 0). */
  address: { host: string; port: number };
  /** Resolves when the scheduler has stopped. */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

export interface StartOptions extends DaemonOptions {
  /** Test seams for preheat (resolver, dispatcher, probe). */
  preheat?: Pick<PreheatOptions, 'resolve' | 'dispatch' | 'probe'>;
}

const SWEEP_MS = 5_000;
const PREHEAT_POLL_MS = 3_000;

export async function startScheduler(config: SchedulerConfig, opts: StartOptions = {}): Promise<RunningScheduler> {
  const log = daemonLogger('p2p scheduler', config.logLevel, opts);
  const state = new SchedulerState({
    parents: config.parents,
    childrenPerSlot: config.childrenPerSlot,
    seedStallMs: config.seedStallSeconds * 1000,
    backToSourceLimit: config.backToSourceLimit,
    blockMs: config.blockSeconds * 1000,
    peerIdleMs: config.peerIdleSeconds * 1000,
    taskIdleMs: config.taskIdleSeconds * 1000,
    log,
  });
  const preheat = new PreheatManager({
    state,
    insecureRegistries: config.insecureRegistries,
    seedsPerBlob: config.preheatSeedsPerBlob,
    timeoutMs: config.preheatTimeoutSeconds * 1000,
    log,
    ...opts.preheat,
  });
  state.setListener(preheat);
  const metrics = new SchedulerMetrics(state, preheat);
  const server = schedulerApp({ state, preheat, metrics, log });
  const { host, port } = splitAddr(config.listen);
  const address = await server.listen(host, port);
  log.info(
    { ...address, parents: config.parents, seedStallSeconds: config.seedStallSeconds, backToSourceLimit: config.backToSourceLimit, insecureRegistries: config.insecureRegistries },
    'p2p scheduler started',
  );

  const sweep = setInterval(() => {
    state.sweep();
    preheat.tick();
  }, SWEEP_MS);
  let polling = false;
  const poll = setInterval(() => {
    if (polling) return;
    polling = true;
    void preheat.poll().finally(() => (polling = false));
  }, PREHEAT_POLL_MS);
  sweep.unref();
  poll.unref();

  const { done, shutdown } = daemonStop(
    'p2p scheduler',
    log,
    {
      halt: () => {
        clearInterval(sweep);
        clearInterval(poll);
        preheat.close();
      },
      servers: [{ close: (ms) => server.close(ms), timeoutMs: config.shutdownTimeoutSeconds * 1000 }],
    },
    opts,
  );
  return { state, preheat, log, address, done, shutdown };
}
