/** The cluster's public face: its etcd, the manager, and the testbed (etcd, emulated hosts and, on top, the managers). */
export { EtcdCluster, ETCD_BINARY, type EtcdOptions, type EtcdMemberInfo } from './etcd.js';
export { Testbed, type TestbedOptions, type TestbedDescription, type UiInfo, type TestbedComponent, type TestbedContext, type StartedComponent, type ManagerInfo, type RegistryInfo, type P2pInfo, type P2pPeerInfo } from './testbed/testbed.js';
export type { HostInfo } from './testbed/host.js';
export { loadManagerConfig, startManager, joinToken, type ManagerConfig, type RunningManager, type NodeView } from './manager.js';
export { newToken } from './store.js';
export { uiTokens, issueUiToken, revokeUiToken, listUiTokens, type UiRole } from './ui-tokens.js';
export { startRelay, type RelayOptions, type RunningRelay } from './relay.js';
export type { BatchRequest } from './batch.js';
export type { BatchRecord } from './store.js';
export type { BatchReplica } from './batch.js';
export { managerComponents } from './testbed/managers.js';
export { registryComponent } from './testbed/registry.js';
export { startProxy, parseProxyFlags, type ProxyOptions, type RunningProxy } from './proxy.js';
export { ReleaseController, EtcdReleaseStore, releaseRoutes, releaseFromLabels, LABELS as RELEASE_LABELS, type ReleaseOps, type ReleaseInstance, type ReplaceResult, type ReleaseRecord, type ReleaseHeader, type ReleaseRequest, type ReleaseStore } from './release/index.js';
