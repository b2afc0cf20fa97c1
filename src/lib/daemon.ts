/**
 * How a Sampan daemon (the registry, the P2P scheduler and peer; the engine to come) logs and stops: JSON logs on
 * stderr named after it, and one graceful stop (SIGTERM, SIGINT, or asked for) that halts new work, lets each
 * server drain, releases what requests used, and flushes the last log lines before the process exits.
 */
import { gracefulStop, type GracefulStop } from './lifecycle.js';
import { createLogger, type Logger } from './log.js';

export interface DaemonOptions {
  /** Stop on SIGTERM and SIGINT (default true; tests that run several daemons in one process say false). */
  handleSignals?: boolean;
  /** A logger to use instead of the daemon's own. */
  log?: Logger;
}

/** The daemon's logger: `sampan-<what>` (`sampan-p2p-peer`), at `level`. */
export function daemonLogger(what: string, level: string | undefined, opts: DaemonOptions = {}): Logger {
  return opts.log ?? createLogger(`sampan-${what.replaceAll(' ', '-')}`, level);
}

export interface StopPlan {
  /** First: what starts new work (timers, pollers). */
  halt?: () => void;
  /** Then the servers stop accepting and drain, each within its own time for requests in flight. */
  servers: Array<{ close(timeoutMs: number): Promise<void>; timeoutMs: number }>;
  /** Last: what requests used (stores, upstream connections). */
  release?: () => Promise<void> | void;
}

/** The graceful stop of daemon `what` (logged as "<what> stopped"). */
export function daemonStop(what: string, log: Logger, plan: StopPlan, opts: DaemonOptions = {}): GracefulStop {
  return gracefulStop(async () => {
    log.info('shutting down: no new connections; waiting for requests in flight');
    plan.halt?.();
    await Promise.all(plan.servers.map((s) => s.close(s.timeoutMs)));
    await plan.release?.();
    log.info(`${what} stopped`);
    log.flush();
  }, opts);
}
