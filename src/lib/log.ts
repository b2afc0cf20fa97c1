import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs on stderr; level from SAMPAN_LOG_LEVEL or the caller. */
export function createLogger(name: string, level?: string): Logger {
  return pino(
    { name, level: level ?? process.env.SAMPAN_LOG_LEVEL ?? 'info', base: { pid: process.pid } },
    pino.destination({ fd: 2, sync: false }),
  );
}

/** A logger that drops everything (for library use from the CLI). */
export const silentLogger: Logger = pino({ level: 'silent' });
