/** Run the registry in this process: storage, caches, HTTP server, timers, graceful stop. */
import { createLogger, type Logger } from '../lib/log.js';
import { RegistryServer } from './api/server.js';
import { splitAddr, type RegistryConfig } from './config.js';
import { collectGarbage } from './gc.js';
import type { Authorizer, Upstream } from './hooks.js';
import { Registry } from './registry.js';
import { FilesystemDriver } from './storage/filesystem.js';
import type { StorageDriver } from './storage/driver.js';

export interface RunningRegistry {
  registry: Registry;
  server: RegistryServer;
  log: Logger;
  /** Where it listens (the real port when the config asked for port 0). */
  address: { host: string; port: number };
  /** Resolves when the registry has stopped. */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

export interface StartOptions {
  handleSignals?: boolean;
  log?: Logger;
  storage?: StorageDriver;
  authorizer?: Authorizer;
  upstream?: Upstream;
}

/** The Registry (rules + caches) over the configured storage, without a server: for `gc` and tests. */
export async function openRegistry(config: RegistryConfig, log: Logger, storage?: StorageDriver, upstream?: Upstream): Promise<Registry> {
  const driver = storage ?? new FilesystemDriver(config.root);
  await driver.init();
  return new Registry(driver, {
    maxManifestBytes: config.maxManifestBytes,
    enableDelete: config.enableDelete,
    cacheMaxBytes: config.cacheMaxBytes,
    cacheMaxEntries: config.cacheMaxEntries,
    upstream,
    log,
  });
}

export async function startRegistry(config: RegistryConfig, opts: StartOptions = {}): Promise<RunningRegistry> {
  const log = opts.log ?? createLogger('sampan-registry', config.logLevel);
  const registry = await openRegistry(config, log, opts.storage, opts.upstream);
  const server = new RegistryServer(registry, { log, authorizer: opts.authorizer });
  const { host, port } = splitAddr(config.addr);
  const address = await server.listen(host, port, config.tlsCert && config.tlsKey ? { cert: config.tlsCert, key: config.tlsKey } : undefined);
  log.info({ root: config.root, storage: registry.storage.kind, enableDelete: config.enableDelete, maxManifestBytes: config.maxManifestBytes }, 'registry started');

  const timers: NodeJS.Timeout[] = [];
  let busy = false;
  const background = (what: string, fn: () => Promise<unknown>) => async () => {
    if (busy) return;
    busy = true;
    try {
      await fn();
    } catch (err) {
      log.error({ err }, `${what} failed`);
    } finally {
      busy = false;
    }
  };
  const expiryMs = config.uploadExpirySeconds * 1000;
  if (config.uploadPurgeIntervalSeconds > 0) {
    const purge = background('upload expiry', async () => {
      const gone = await registry.purgeUploads(expiryMs);
      if (gone.length) log.info({ purged: gone.map((u) => `${u.repository}/${u.id}`) }, 'expired stale uploads');
    });
    timers.push(setInterval(purge, config.uploadPurgeIntervalSeconds * 1000));
    setTimeout(purge, 5_000).unref();
  }
  if (config.gcIntervalSeconds > 0) {
    timers.push(setInterval(background('garbage collection', () => collectGarbage(registry, { graceMs: config.gcGraceSeconds * 1000, uploadMaxAgeMs: expiryMs, log })), config.gcIntervalSeconds * 1000));
  }
  for (const t of timers) t.unref();

  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  let stopping: Promise<void> | undefined;
  const shutdown = () =>
    (stopping ??= (async () => {
      log.info('shutting down: no new connections; waiting for requests in flight');
      for (const t of timers) clearInterval(t);
      await server.close(config.shutdownTimeoutSeconds * 1000);
      log.info('registry stopped');
      log.flush();
      resolveDone();
    })());
  if (opts.handleSignals !== false) {
    process.once('SIGTERM', () => void shutdown());
    process.once('SIGINT', () => void shutdown());
  }
  return { registry, server, log, address, done, shutdown };
}
