/** Run the registry in this process: storage, caches, HTTP server, timers, graceful stop. */
import { daemonLogger, daemonStop, type DaemonOptions } from '../lib/daemon.js';
import type { Logger } from '../lib/log.js';
import { RegistryServer } from './api/server.js';
import { createAuthorizer, toServerAuthorizer } from './auth/index.js';
import { tokenFlavour } from './auth/token.js';
import { type RegistryConfig } from './config.js';
import { collectGarbage } from './gc.js';
import type { Authorizer, Upstream } from './hooks.js';
import { MirrorUpstream } from './mirror/upstream.js';
import { Registry } from './registry.js';
import { FilesystemDriver } from './storage/filesystem.js';
import type { StorageDriver } from './storage/driver.js';
import { splitAddr } from '../lib/units.js';

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

export interface StartOptions extends DaemonOptions {
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
  const log = daemonLogger('registry', config.logLevel, opts);
  // mirror mode: a pull-through cache of config.proxy.remoteurl (the Upstream writes into the same storage)
  const storage = opts.storage ?? new FilesystemDriver(config.root);
  const upstream = opts.upstream ?? (config.proxy ? new MirrorUpstream(config.proxy, storage, log) : undefined);
  const registry = await openRegistry(config, log, storage, upstream);
  // auth: the config's, unless an authorizer was handed in (tests, embedding)
  const auth = opts.authorizer ? undefined : await createAuthorizer(config.auth, { root: config.root, log });
  if (auth && auth.mode !== 'none') log.info({ auth: auth.mode, service: auth.mode === 'token' ? config.auth.service : undefined, tokenService: auth.tokenPath }, 'authentication on');
  const server = new RegistryServer(registry, {
    log,
    authorizer: opts.authorizer ?? (auth && toServerAuthorizer(auth)),
    tokenEndpoint: auth?.tokenPath && auth.tokenService ? { path: auth.tokenPath, serve: auth.tokenService.serve, flavour: tokenFlavour } : undefined,
  });
  const { host, port } = splitAddr(config.addr);
  const address = await server.listen(host, port, config.tlsCert && config.tlsKey ? { cert: config.tlsCert, key: config.tlsKey } : undefined);
  log.info({ root: config.root, storage: registry.storage.kind, enableDelete: config.enableDelete, maxManifestBytes: config.maxManifestBytes }, 'registry started');
  if (config.proxy) log.info({ upstream: config.proxy.remoteurl, ttlMs: config.proxy.ttlMs, credentials: !!config.proxy.username }, 'mirror mode: read-only pull-through cache');

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

  const { done, shutdown } = daemonStop(
    'registry',
    log,
    {
      halt: () => timers.forEach(clearInterval),
      servers: [{ close: (ms) => server.close(ms), timeoutMs: config.shutdownTimeoutSeconds * 1000 }],
      release: () => upstream?.close?.(),
    },
    opts,
  );
  return { registry, server, log, address, done, shutdown };
}
