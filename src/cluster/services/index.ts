/**
 * Services (Docker's swarm mode over the cluster): what the manager composes. Files: spec.ts (rules, defaults,
 * template hash), records.ts (etcd), tasks.ts (a task's container), observe.ts, replace.ts (one slot's replacement),
 * slots.ts (the slots a service fills: replicas, or a global service's one per eligible node), reconciler.ts,
 * updater.ts (rolling updates, rollback), configs.ts, logs.ts, views.ts (wire types, filters), swarm-api.ts (the
 * Docker API backend), release-ops.ts (what a release drives).
 */
export { ServiceController } from './controller.js';
export { SwarmApi, swarmIdentity, type NodeOps } from './swarm-api.js';
export { ServiceReleaseOps } from './release-ops.js';
export { configView } from './views.js';
export { swarmInfo } from './swarm-api.js';
export { configRoute } from './config-watch.js';
