/**
 * Which slots a service should fill. A replicated service's are 1..Replicas. A global service (`--mode global`) has
 * one task per eligible node (up, active, meeting the placement constraints), as swarmkit's global orchestrator; it
 * keeps the slot machinery all the same (reconciler, rolling update, SlotReplacer, releases): each (service, node)
 * has an internal slot number, stable while the node has tasks of the service (it is read back from the task
 * records), and a task started in it is pinned to that node. The API shows such tasks with Slot 0, as Docker does.
 */
import type { ServiceSpec } from '../../lib/swarm-types.js';
import { parseRule } from '../request.js';
import { meets, type Rule } from '../scheduler.js';
import type { ClusterState } from '../state.js';
import type { TaskRecord } from './records.js';
import { constraints, isGlobal, replicasOf } from './spec.js';

/** What the global planning needs of a node. */
export interface NodeFacts {
  id: string;
  name: string;
  labels: Record<string, string>;
  up: boolean;
  active: boolean;
}

export interface SlotPlan {
  /** Slots that should have a running task, with the node its task is pinned to (undefined: the scheduler's pick). */
  want: Map<number, string | undefined>;
  /** Slots whose ended tasks stay as history (up to the retention limit); the others' records go. */
  history: Set<number>;
}

/** The node a global task in `slot` belongs to: the one its tasks ran on (a slot never changes node). */
export function slotNode(tasks: Array<Pick<TaskRecord, 'slot' | 'node' | 'createdAt'>>, slot: number): string | undefined {
  return tasks.filter((t) => t.slot === slot && t.node).sort((a, b) => b.createdAt.localeCompare(a.createdAt))[0]?.node;
}

/**
 * A global service's plan, pure: every eligible node has its slot (the one its tasks have, else the next unused
 * number, nodes in name order); a drained, down or no longer matching node keeps its slot's history but no task,
 * a node gone from the cluster loses both.
 */
export function planGlobal(tasks: Array<Pick<TaskRecord, 'slot' | 'node' | 'createdAt'>>, nodes: NodeFacts[], rules: Rule[]): SlotPlan {
  const slotOf = new Map<string, number>();
  for (const t of [...tasks].sort((a, b) => a.createdAt.localeCompare(b.createdAt))) if (t.node) slotOf.set(t.node, t.slot);
  let top = Math.max(0, ...tasks.map((t) => t.slot));
  const want = new Map<number, string>();
  const history = new Set<number>();
  for (const n of [...nodes].sort((a, b) => a.name.localeCompare(b.name))) {
    const eligible = n.up && n.active && rules.every((r) => meets(n, r));
    let slot = slotOf.get(n.id);
    if (slot === undefined) {
      if (!eligible) continue;
      slot = ++top;
    }
    history.add(slot);
    if (eligible) want.set(slot, n.id);
  }
  return { want, history };
}

/** The constraints of a task spec as the scheduler's rules (node.hostname, node.labels.KEY, ...). */
export function placementRules(spec: ServiceSpec): Rule[] {
  return constraints(spec.TaskTemplate).map((c) => parseRule('constraint', c));
}

export function nodeFacts(state: ClusterState): NodeFacts[] {
  return [...state.nodes.values()].map((n) => ({ id: n.rec.id, name: n.rec.name, labels: n.rec.labels, up: n.rec.state === 'up', active: (n.rec.availability ?? 'active') === 'active' }));
}

/** The service's slots now: 1..Replicas, or one per eligible node. */
export function slotPlan(spec: ServiceSpec, tasks: TaskRecord[], state: ClusterState): SlotPlan {
  if (isGlobal(spec)) return planGlobal(tasks, nodeFacts(state), placementRules(spec));
  const n = replicasOf(spec);
  const want = new Map<number, string | undefined>();
  for (let s = 1; s <= n; s++) want.set(s, undefined);
  return { want, history: new Set(want.keys()) };
}
