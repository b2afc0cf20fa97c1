/**
 * /metrics: a prom-client registry of the scheduler's own. The state keeps plain counters (no prom-client on
 * the announce/progress path); they are read into the metrics when scraped.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { JOB_STATES, type PreheatManager } from './preheat.js';
import { FAIL_REASONS, type SchedulerState } from './state.js';

const P = 'sampan_p2p_scheduler_';

export class SchedulerMetrics {
  readonly registry = new Registry();

  constructor(state: SchedulerState, preheat: PreheatManager) {
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: P });
    const stats = state.stats;
    new Gauge({
      name: `${P}peers`,
      help: 'Peers known to the scheduler (registered or announced, heard from lately)',
      registers: [r],
      collect() {
        this.set(state.liveHosts().length);
      },
    });
    new Gauge({
      name: `${P}tasks_active`,
      help: 'Tasks (blobs) with at least one peer',
      registers: [r],
      collect() {
        this.set(state.taskCount);
      },
    });
    new Gauge({
      name: `${P}task_peers`,
      help: 'Peers in tasks (a peer in two tasks counts twice)',
      registers: [r],
      collect() {
        this.set(state.taskPeerCount);
      },
    });
    new Counter({
      name: `${P}announces_total`,
      help: 'Task announces, by the role the peer was given',
      labelNames: ['role'],
      registers: [r],
      collect() {
        this.reset();
        this.inc({ role: 'seed' }, stats.announces.seed);
        this.inc({ role: 'child' }, stats.announces.child);
      },
    });
    new Counter({
      name: `${P}parents_assigned_total`,
      help: 'Parent links handed to children (a parent a child already had is not counted again)',
      registers: [r],
      collect() {
        this.reset();
        this.inc(stats.parentsAssigned);
      },
    });
    new Counter({
      name: `${P}back_to_source_total`,
      help: 'Children told to go to the upstream because the seed stalled',
      registers: [r],
      collect() {
        this.reset();
        this.inc(stats.backToSource);
      },
    });
    new Counter({
      name: `${P}failed_pieces_total`,
      help: 'Failed pieces reported by children, by reason',
      labelNames: ['reason'],
      registers: [r],
      collect() {
        this.reset();
        for (const reason of FAIL_REASONS) this.inc({ reason }, stats.failedPieces[reason]);
      },
    });
    new Gauge({
      name: `${P}preheat_jobs`,
      help: 'Preheat jobs held, by state',
      labelNames: ['state'],
      registers: [r],
      collect() {
        const c = preheat.counts();
        for (const state of JOB_STATES) this.set({ state }, c[state]);
      },
    });
  }
}
