/** This host's implementation of the Docker API layer's backends (src/docker-api/backend.ts). */
import type { Backends, BuildBackend } from '../../docker-api/index.js';
import type { Engine } from '../engine.js';
import { EngineContainers } from './containers.js';
import { EngineExec } from './exec.js';
import { EngineImages } from './images.js';
import { EngineNetworks } from './networks.js';
import { EngineSystem } from './system.js';
import { EngineVolumes } from './volumes.js';

/** The builder is a good share of the engine's code: it loads with the first build. */
function lazyBuild(e: Engine): BuildBackend {
  let loaded: Promise<BuildBackend> | undefined;
  const get = () => (loaded ??= import('./build.js').then((m) => new m.EngineBuild(e)));
  return {
    build: async (q, context, registryConfig, out) => (await get()).build(q, context, registryConfig, out),
    prune: async () => (await get()).prune(),
  };
}

export function engineBackends(e: Engine): Backends {
  return {
    containers: new EngineContainers(e),
    exec: new EngineExec(e),
    images: new EngineImages(e),
    build: lazyBuild(e),
    networks: new EngineNetworks(e),
    volumes: new EngineVolumes(e),
    system: new EngineSystem(e),
  };
}
