/** Releases: the planner, the controller that drives ReleaseOps, its persistence in etcd, and its REST routes. */
export type { ReleaseOps, ReleaseInstance, ReplaceResult } from './ops.js';
export { plan, apply, begin, settle, newState, p90, unavailable, MAX_ATTEMPTS, type Policy, type SmartPolicy, type LockstepPolicy, type DockerPolicy, type PlanState, type PlanSlot, type Decision, type Start, type Verdict, type Order } from './planner.js';
export { ReleaseController, type ReleaseAction, type ControllerOptions } from './controller.js';
export { EtcdReleaseStore, type ReleaseStore } from './store.js';
export { releaseRoutes } from './routes.js';
export { LABELS, releaseFromLabels, validateRelease, isActive, type ReleaseRecord, type ReleaseHeader, type ReleaseRequest, type ReleaseState, type ReleaseEvent, type SlotRecord } from './record.js';
