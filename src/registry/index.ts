/** The registry's public face. */
export { loadRegistryConfig, type RegistryConfig, type RegistryFlags } from './config.js';
export { openRegistry, startRegistry } from './daemon.js';
export { collectGarbage } from './gc.js';
