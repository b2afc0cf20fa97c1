/** The engine's public face: what the CLI (and later the cluster) may use of it. */
export { loadEngineConfig, type EngineConfig } from './config.js';
export { startEngine, type RunningEngine } from './daemon.js';
export { buildBusyboxArchive } from './images/seed.js';
export { mountBtrfsRoot } from './quota/btrfs-root.js';
export { cleanupHost } from './network/cleanup.js';
