/** The CLI's side of the engine client: which engine a command talks to, and how its errors are printed. */
import type { Command } from 'commander';
import { ApiError, ConnectionError, EngineClient, resolveHost, tlsFromOptions } from '../lib/engine-client.js';

/**
 * The `--host` a command was given: its own option when set on the command line, else the
 * nearest parent's (the program's global `-H, --host`), else undefined (resolveHost decides).
 */
export function hostOption(cmd: Command): string | undefined {
  let fallback: string | undefined;
  for (let c: Command | null = cmd; c; c = c.parent) {
    const v = c.opts().host as unknown;
    if (typeof v !== 'string' || !v) continue;
    if (c.getOptionValueSource('host') === 'cli') return v;
    fallback ??= v;
  }
  return fallback;
}

/** A client for the engine a command is pointed at (its --host, TLS options and environment). */
export function clientFor(cmd: Command): EngineClient {
  const host = hostOption(cmd);
  const resolved = resolveHost(host);
  const tls = resolved.startsWith('unix://') || resolved.startsWith('/') ? undefined : tlsFromOptions(cmd.optsWithGlobals());
  return new EngineClient({ host: resolved, tls });
}

/** What the CLI prints for an error: docker's "Error response from daemon: …" for engine answers. */
export function describeError(err: unknown): string {
  if (err instanceof ApiError) return `Error response from daemon: ${err.message}`;
  if (err instanceof ConnectionError) return err.message;
  if (err instanceof Error) return err.message.startsWith('Error') ? err.message : `Error: ${err.message}`;
  return `Error: ${String(err)}`;
}

/** Exits once what was written to stdout and stderr has been handed to the OS. */
export function exitWith(code: number): Promise<never> {
  return new Promise<never>(() => {
    let pending = 2;
    const done = () => {
      if (--pending === 0) process.exit(code);
    };
    process.stdout.write('', done);
    process.stderr.write('', done);
  });
}

/** Wraps a command action: errors are printed docker-style and the process exits with code 1. */
export function withErrors<A extends unknown[]>(fn: (...args: A) => Promise<void> | void): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      process.stderr.write(`${describeError(err)}\n`);
      await exitWith(1);
    }
  };
}
