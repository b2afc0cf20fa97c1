import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCode } from '../lib/errors.js';
import { filterNodes, parseConstraints, place, type Candidate, type Request } from './scheduler.js';

const GB = 1 << 30;
const node = (name: string, o: Partial<Candidate> = {}): Candidate => ({
  id: `id-${name}`, name, labels: {}, up: true, drained: false, capacity: { ncpu: 2, memTotal: 4 * GB }, containers: 0, reserved: { memory: 0, nanoCpus: 0 }, ...o,
});
const any: Request = { constraints: [], memory: 0, nanoCpus: 0 };
const counts = (placed: Candidate[]) => placed.reduce<Record<string, number>>((a, n) => ({ ...a, [n.name]: (a[n.name] ?? 0) + 1 }), {});

test('constraints come from the env (Swarm classic) and from com.sampan.constraint.* labels; the env keeps the rest', () => {
  const r = parseConstraints(['A=1', 'constraint:node==host2', 'constraint:disk!=hdd'], { 'com.sampan.constraint.zone': 'eu-*', 'com.sampan.constraint.gpu': '!=none', other: 'x' });
  assert.deepEqual(r.env, ['A=1']);
  assert.deepEqual(r.constraints.map((c) => c.text), ['node==host2', 'disk!=hdd', 'zone==eu-*', 'gpu!=none']);
  assert.throws(() => parseConstraints(['constraint:node=host2'], {}), (e) => isCode(e, 'INVALID_ARGUMENT'));
});

test('spread puts each replica on the node with the fewest containers: one pass, counting its own placements', () => {
  const nodes = [node('a', { containers: 2 }), node('b'), node('c')];
  assert.deepEqual(counts(place(nodes, any, 7)), { a: 1, b: 3, c: 3 });
  assert.deepEqual(counts(place([node('a'), node('b'), node('c')], any, 30)), { a: 10, b: 10, c: 10 });
});

test('binpack fills the fullest node that still fits; random stays within the candidates', () => {
  const nodes = [node('a', { containers: 1 }), node('b', { containers: 3 })];
  assert.deepEqual(counts(place(nodes, any, 4, 'binpack')), { b: 4 });
  // memory decides when the fullest is full
  const small = [node('a', { capacity: { ncpu: 2, memTotal: 2 * GB } }), node('b', { containers: 5, capacity: { ncpu: 2, memTotal: 1 * GB } })];
  assert.deepEqual(counts(place(small, { ...any, memory: GB }, 3, 'binpack')), { b: 1, a: 2 });
  let i = 0;
  const seq = [0.9, 0.1, 0.6];
  assert.deepEqual(place([node('a'), node('b')], any, 3, 'random', () => seq[i++]!).map((n) => n.name), ['b', 'a', 'b']);
});

test('down nodes, unmet constraints and reservations filter; nothing left is a 409 naming what failed', () => {
  const nodes = [node('host1', { labels: { zone: 'eu-1' } }), node('host2', { up: false }), node('host3', { labels: { zone: 'us' } })];
  const only = (text: string) => filterNodes(nodes, { ...any, constraints: parseConstraints([`constraint:${text}`], {}).constraints }).map((n) => n.name);
  assert.deepEqual(only('node==host3'), ['host3']);
  assert.deepEqual(only('node!=host1'), ['host3']);
  assert.deepEqual(only('zone==eu-*'), ['host1']);
  assert.deepEqual(only('zone==/^u/'), ['host3']);
  assert.throws(() => only('node==host2'), (e) => isCode(e, 'CONFLICT') && /node==host2/.test((e as Error).message));
  assert.throws(() => only('node==no-such-node'), /unable to find a node that satisfies the constraint node==no-such-node/);
  assert.throws(() => place(nodes, { ...any, memory: 5 * GB }, 1), (e) => isCode(e, 'CONFLICT') && /memory/.test((e as Error).message));
  // reservations are charged as a batch is placed: 4 GB nodes take 2 of 2 GB each
  assert.deepEqual(counts(place([node('a'), node('b')], { ...any, memory: 2 * GB }, 4)), { a: 2, b: 2 });
  assert.throws(() => place([node('a'), node('b')], { ...any, memory: 2 * GB }, 5), /only 4 of 5 replicas fit/);
  assert.throws(() => place([node('a', { up: false })], any, 1), /no node of the cluster is up/);
  assert.throws(() => place([node('a', { drained: true })], any, 1), /every node of the cluster that is up is drained/);
  assert.deepEqual(place([node('a', { drained: true }), node('b')], any, 2).map((n) => n.name), ['b', 'b']);
});
