import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseRule } from '../request.js';
import { planGlobal, placementRules, slotNode, type NodeFacts } from './slots.js';
import { validateSpec } from './spec.js';

const node = (id: string, o: Partial<NodeFacts> = {}): NodeFacts => ({ id, name: `host-${id}`, labels: {}, up: true, active: true, ...o });
const task = (slot: number, n: string, at = '2026-01-01T00:00:00Z') => ({ slot, node: n, createdAt: at });
const wanted = (p: { want: Map<number, string | undefined> }) => Object.fromEntries([...p.want].map(([s, n]) => [n!, s]));

test('a global service: one slot per eligible node, new nodes after the highest slot, in name order', () => {
  assert.deepEqual(wanted(planGlobal([], [node('b'), node('a'), node('c')], [])), { a: 1, b: 2, c: 3 });
  // a node keeps the slot its tasks have; a new one takes the next number, never one a task still holds
  const p = planGlobal([task(1, 'a'), task(2, 'b'), task(7, 'gone')], [node('a'), node('b'), node('d')], []);
  assert.deepEqual(wanted(p), { a: 1, b: 2, d: 8 });
  // the removed node's slot keeps no history; the others do
  assert.deepEqual([...p.history].sort(), [1, 2, 8]);
});

test('a global service: a node down, drained or not matching the constraints has no task but keeps its history', () => {
  const tasks = [task(1, 'a'), task(2, 'b'), task(3, 'c')];
  const nodes = [node('a', { up: false }), node('b', { active: false }), node('c', { labels: { zone: 'x' } }), node('d')];
  const p = planGlobal(tasks, nodes, [parseRule('constraint', 'zone!=x')]);
  assert.deepEqual(wanted(p), { d: 4 });
  assert.deepEqual([...p.history].sort(), [1, 2, 3, 4]);
  // an ineligible node that never had a task gets no slot at all
  assert.deepEqual(planGlobal([], [node('a', { active: false })], []), { want: new Map(), history: new Set() });
});

test('a slot\'s node is the one its newest task ran on; the spec\'s constraints are the scheduler\'s rules', () => {
  assert.equal(slotNode([task(1, 'a', '2026-01-01T00:00:00Z'), task(2, 'b'), task(1, '', '2026-01-02T00:00:00Z')], 1), 'a');
  assert.equal(slotNode([task(2, 'b')], 1), undefined);
  const spec = validateSpec({ Name: 'g', Mode: { Global: {} }, TaskTemplate: { ContainerSpec: { Image: 'busybox' }, Placement: { Constraints: ['node.hostname!=host1', 'node.labels.zone==a'] } } });
  assert.deepEqual(spec.Mode, { Global: {} });
  assert.deepEqual(placementRules(spec).map((r) => `${r.key}${r.op}${r.value}`), ['node!=host1', 'zone==a']);
  const p = planGlobal([], [node('1', { name: 'host1', labels: { zone: 'a' } }), node('2', { name: 'host2', labels: { zone: 'a' } }), node('3', { name: 'host3' })], placementRules(spec));
  assert.deepEqual(wanted(p), { 2: 1 });
});
