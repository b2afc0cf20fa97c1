/** P2P distribution's public face: the scheduler and peer daemons and the wire types clients read. */
export { loadSchedulerConfig, type SchedulerFlags } from './scheduler/config.js';
export { startScheduler } from './scheduler/daemon.js';
export { loadPeerConfig, type PeerFlags } from './peer/config.js';
export { startPeer } from './peer/daemon.js';
export { preheat, type PreheatOptions } from './preheat.js';
export type { PeerTaskSummary, PreheatJob, PreheatRequest, TrafficView } from './protocol.js';
