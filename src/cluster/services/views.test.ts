import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClusterState } from '../state.js';
import type { ServiceRecord, TaskRecord } from './records.js';
import { templateHash } from './spec.js';
import { checkFilters, serviceMatches, taskMatches, taskView } from './views.js';

const tmpl = (image: string) => ({ ContainerSpec: { Image: image } });
const svc: ServiceRecord = { id: 'svcid0000000000000000000001', version: 3, createdAt: 't', updatedAt: 't', spec: { Name: 'web', Labels: { tier: 'front' }, TaskTemplate: tmpl('app:v2'), Mode: { Replicated: { Replicas: 2 } } } };
const task = (id: string, slot: number, image: string, desired: 'running' | 'shutdown'): TaskRecord => ({
  id, version: 1, createdAt: 't', updatedAt: 't', service: svc.id, slot, node: 'n1', container: `c-${id}`, spec: tmpl(image), hash: templateHash(tmpl(image)), desired, state: desired === 'running' ? 'running' : 'shutdown', message: '',
});

test('task filters as Docker\'s: service by id or name, desired-state, name SERVICE.SLOT, the CLI\'s _up-to-date', () => {
  const services = new Map([[svc.id, svc]]);
  const state = new ClusterState();
  const ts = [task('a', 1, 'app:v2', 'running'), task('b', 1, 'app:v1', 'shutdown'), task('c', 2, 'app:v1', 'running')];
  const pick = (f: Record<string, string[]>) => ts.filter((t) => taskMatches(t, new Map(Object.entries(f)), services, state)).map((t) => t.id);
  assert.deepEqual(pick({ service: ['web'] }), ['a', 'b', 'c']);
  assert.deepEqual(pick({ service: [svc.id] }), ['a', 'b', 'c']);
  assert.deepEqual(pick({ service: ['other'] }), []);
  assert.deepEqual(pick({ 'desired-state': ['running'] }), ['a', 'c']);
  assert.deepEqual(pick({ 'desired-state': ['shutdown'] }), ['b']);
  assert.deepEqual(pick({ name: ['web.2'] }), ['c']);
  assert.deepEqual(pick({ '_up-to-date': ['true'] }), ['a']);
  assert.throws(() => checkFilters('task', new Map([['colour', ['x']]])), /invalid filter 'colour'/);
});

test('service filters: name prefix, label, mode; a task\'s view carries its container and error', () => {
  assert.ok(serviceMatches(svc, new Map([['name', ['we']], ['label', ['tier=front']], ['mode', ['replicated']]])));
  assert.ok(!serviceMatches(svc, new Map([['label', ['tier=back']]])));
  assert.ok(!serviceMatches(svc, new Map([['mode', ['global']]])));
  const v = taskView({ ...task('a', 1, 'app:v2', 'shutdown'), state: 'failed', err: 'task: non-zero exit (1)', exitCode: 1 }, false);
  assert.equal(v.Status.State, 'failed');
  assert.equal(v.Status.Err, 'task: non-zero exit (1)');
  assert.deepEqual(v.Status.ContainerStatus, { ContainerID: 'c-a', PID: 0, ExitCode: 1 });
  assert.equal(v.DesiredState, 'shutdown');
});
