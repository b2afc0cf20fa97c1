import { promises as fs } from 'node:fs';
import os from 'node:os';
import { daemonLogger, daemonStop } from '../lib/daemon.js';
import type { Logger } from '../lib/log.js';
import { readTls } from '../lib/tls.js';
import type { EngineConfig } from './config.js';
import { Engine } from './engine.js';
import { DockerApiServer } from '../docker-api/index.js';
import { engineBackends } from './backend/index.js';
import { claimInstance } from './instance.js';

export interface RunningEngine {
  engine: Engine;
  api: DockerApiServer;
  log: Logger;
  /** Resolves when the engine has shut down. */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

/** Start the engine in this process. SIGTERM/SIGINT stop it gracefully; containers keep running. */
export async function startEngine(config: EngineConfig, opts: { handleSignals?: boolean } = {}): Promise<RunningEngine> {
  const instance = await claimInstance(config);
  const log = daemonLogger('engine', config.logLevel);
  const engine = await Engine.open(config, log);
  const api = new DockerApiServer(engineBackends(engine), log);
  const tls = config.tlscacert && config.tlscert && config.tlskey ? { ca: config.tlscacert, cert: config.tlscert, key: config.tlskey } : undefined;
  await api.listen(config.hosts, tls);
  log.info({ root: config.root, execRoot: config.execRoot, containers: engine.containers.list().length, images: engine.images.store.list().length }, 'engine started');
  const labels = Object.fromEntries(config.nodeLabels.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  // the node agent (and its WebSocket library) loads only in an engine that joins a cluster
  const { NodeAgent } = config.join.length ? await import('./agent.js') : { NodeAgent: undefined };
  // config validation made sure a wss:// join has all three files (its own or the engine's)
  const joinTls = config.join.some((j) => j.startsWith('wss://'))
    ? await readTls({ ca: config.joinTlscacert!, cert: config.joinTlscert!, key: config.joinTlskey! })
    : undefined;
  const agents = NodeAgent ? config.join.map((join) => new NodeAgent(engine, {
    join, token: config.joinToken!, nodeName: config.nodeName ?? os.hostname(), labels, api: config.hosts[0]!, ...(join.startsWith('wss://') && { tls: joinTls }),
  }, log)) : [];
  // containers keep running: the engine's stop leaves them to be re-adopted by the next one
  const { done, shutdown } = daemonStop('engine', log, {
    halt: () => agents.forEach((a) => a.close()),
    servers: [{ close: (ms) => api.close(ms), timeoutMs: 10_000 }],
    release: async () => {
      engine.close();
      await fs.rm(`${config.execRoot}/engine.pid`, { force: true });
      instance.release();
    },
  }, opts);
  return { engine, api, log, done, shutdown };
}
