/** The registry's public face. */
export { loadRegistryConfig, type RegistryConfig, type RegistryFlags } from './config.js';
export { openRegistry, startRegistry } from './daemon.js';
export { collectGarbage } from './gc.js';
/** The Distribution API's errors, for other servers of it (the P2P peer's mirror). */
export { RegistryError, blobUpstreamError, isRefusal, ociFlavour, regError } from './errors.js';
