/**
 * The Docker Engine API layer's public face: the server, the backend interfaces it calls, and what backends use
 * of it. The engine mounts it over one host, the cluster manager over many.
 */
export { DockerApiServer } from './server.js';
export { API_VERSION, MIN_API_VERSION, ENGINE_VERSION } from './http.js';
export type * from './backend.js';
export type { Ctx, Handler } from './http.js';
