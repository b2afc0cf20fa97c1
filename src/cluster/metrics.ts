/**
 * The manager's Prometheus metrics, served on the Docker API server's /metrics beside its own (one registry):
 * nodes by state, containers known, placements, scheduling and etcd transaction latency, batch replicas by result.
 * Counters and histograms exist from the start (they count before the first scrape); gauges are read when scraped.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ClusterState } from './state.js';
import type { StoreHealth } from './store-health.js';

const PREFIX = 'sampan_cluster_';

export class ClusterMetrics {
  readonly placements = new Counter({ name: `${PREFIX}placements_total`, help: 'Containers placed on a node by the scheduler', registers: [] });
  readonly scheduling = new Histogram({
    name: `${PREFIX}scheduling_seconds`, help: 'Time of one scheduling pass (a create, or a whole batch)', registers: [],
    buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
  });
  readonly etcdTxn = new Histogram({
    name: `${PREFIX}etcd_txn_seconds`, help: 'Time of one etcd transaction (a write of the cluster state)', registers: [],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  });
  readonly batchReplicas = new Counter({ name: `${PREFIX}batch_replicas_total`, help: 'Batch replicas by result', labelNames: ['result'], registers: [] });

  constructor(
    private readonly state: ClusterState,
    private readonly etcd: StoreHealth,
  ) {}

  register(registry: Registry): void {
    const { state, etcd } = this;
    new Gauge({
      name: `${PREFIX}etcd_up`, help: 'Whether the manager reaches etcd (0: reads are served from memory, changes refused)', registers: [registry],
      collect() {
        this.set(etcd.up ? 1 : 0);
      },
    });
    new Gauge({
      name: `${PREFIX}nodes`, help: 'Nodes by state (up, down) and availability (active, drain)', labelNames: ['state', 'availability'], registers: [registry],
      collect() {
        this.reset();
        for (const s of ['up', 'down']) for (const a of ['active', 'drain']) this.set({ state: s, availability: a }, 0);
        for (const n of state.nodes.values()) this.inc({ state: n.rec.state, availability: n.rec.availability ?? 'active' });
      },
    });
    new Gauge({
      name: `${PREFIX}containers`, help: 'Containers known to the manager, on all nodes', registers: [registry],
      collect() {
        this.set(state.containerCount);
      },
    });
    registry.registerMetric(this.placements);
    registry.registerMetric(this.scheduling);
    registry.registerMetric(this.etcdTxn);
    registry.registerMetric(this.batchReplicas);
  }
}
