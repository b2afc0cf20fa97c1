/** A daemon's graceful stop, run once however often it is asked for (SIGTERM, SIGINT, a caller or a test). */
export interface GracefulStop {
  /** Resolves when the stop has finished. */
  done: Promise<void>;
  /** Starts the stop (the first call only) and resolves when it has finished. */
  shutdown(): Promise<void>;
}

export function gracefulStop(stop: () => Promise<void>, opts: { handleSignals?: boolean } = {}): GracefulStop {
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  let stopping: Promise<void> | undefined;
  const shutdown = () => (stopping ??= stop().then(finish));
  if (opts.handleSignals !== false) {
    process.once('SIGTERM', () => void shutdown());
    process.once('SIGINT', () => void shutdown());
  }
  return { done, shutdown };
}
