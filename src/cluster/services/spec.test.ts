import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isCode } from '../../lib/errors.js';
import { validateConfigSpec, MAX_CONFIG_SIZE } from './configs.js';
import { constraints, templateHash, updateConfig, validateSpec } from './spec.js';
import { containerBody } from './tasks.js';
import type { ServiceRecord } from './records.js';

const spec = (o: Record<string, unknown> = {}) => ({ Name: 'web', TaskTemplate: { ContainerSpec: { Image: 'busybox' } }, ...o });

test('a spec gets one replica by default; bad names, images and ratios are 400s with swarmkit\'s words', () => {
  assert.equal(validateSpec(spec()).Mode?.Replicated?.Replicas, 1);
  assert.equal(validateSpec(spec({ Mode: { Replicated: { Replicas: 12 } } })).Mode?.Replicated?.Replicas, 12);
  for (const bad of [spec({ Name: 'no_underscores' }), spec({ Name: '-x' }), { Name: 'web', TaskTemplate: { ContainerSpec: {} } }, spec({ Mode: { Replicated: { Replicas: -1 } } }), spec({ UpdateConfig: { MaxFailureRatio: 2 } }), spec({ UpdateConfig: { FailureAction: 'explode' } }), null, []]) {
    assert.throws(() => validateSpec(bad), (err: unknown) => isCode(err, 'INVALID_ARGUMENT'), JSON.stringify(bad));
  }
  assert.throws(() => validateSpec(spec({ Name: 'a_b' })), /name must be valid as a DNS name component/);
});

test('a global spec stays global (no replicas); both modes at once is a 400', () => {
  assert.deepEqual(validateSpec(spec({ Mode: { Global: {} } })).Mode, { Global: {} });
  assert.throws(() => validateSpec(spec({ Mode: { Global: {}, Replicated: { Replicas: 2 } } })), (err: unknown) => isCode(err, 'INVALID_ARGUMENT'));
});

test('the template hash ignores key order and changes with the image or a forced update', () => {
  const a = { ContainerSpec: { Image: 'x', Env: ['A=1'] }, ForceUpdate: 0 };
  const b = { ForceUpdate: 0, ContainerSpec: { Env: ['A=1'], Image: 'x' } };
  assert.equal(templateHash(a), templateHash(b));
  assert.notEqual(templateHash(a), templateHash({ ...a, ContainerSpec: { ...a.ContainerSpec, Image: 'y' } }));
  assert.notEqual(templateHash(a), templateHash({ ...a, ForceUpdate: 1 }));
});

test('update config: swarmkit\'s defaults, the client\'s values over them', () => {
  assert.deepEqual(updateConfig(undefined), { Parallelism: 1, Delay: 0, FailureAction: 'pause', Monitor: 5e9, MaxFailureRatio: 0, Order: 'stop-first' });
  const c = updateConfig({ Parallelism: 2, FailureAction: 'rollback', Order: 'start-first' });
  assert.equal(c.Parallelism, 2);
  assert.equal(c.FailureAction, 'rollback');
  assert.equal(c.Order, 'start-first');
  assert.equal(c.Monitor, 5e9);
});

test('configs: Docker\'s name rule and the 1000 KiB limit', () => {
  const data = (n: number) => Buffer.alloc(n, 'a').toString('base64');
  assert.equal(validateConfigSpec({ Name: 'app.conf-1', Data: data(5) }).Name, 'app.conf-1');
  assert.throws(() => validateConfigSpec({ Name: 'bad name', Data: data(5) }), /invalid name, only 64 \[a-zA-Z0-9-_.\] characters allowed/);
  assert.throws(() => validateConfigSpec({ Name: 'x'.repeat(65), Data: data(5) }), /invalid name/);
  assert.throws(() => validateConfigSpec({ Name: 'empty', Data: '' }), /config data must be larger than 0 and less than 1024000 bytes/);
  assert.throws(() => validateConfigSpec({ Name: 'big', Data: data(MAX_CONFIG_SIZE + 1) }), (err: unknown) => isCode(err, 'INVALID_ARGUMENT'));
});

test('a task\'s container: swarm\'s labels, command and args, the service name as an alias on the cluster network', () => {
  const svc = { id: 'svc1', spec: { Name: 'web', TaskTemplate: { ContainerSpec: { Image: 'busybox' } } } } as unknown as ServiceRecord;
  const b = containerBody(svc, { ContainerSpec: { Image: 'busybox', Command: ['httpd'], Args: ['-f'], Env: ['A=1'], StopGracePeriod: 2e9 }, Placement: { Constraints: ['node.hostname==host2', 'node.labels.zone!=b'] } }, { id: 't1', slot: 3, name: 'web.3.t1', node: 'n1' }) as Record<string, any>;
  assert.deepEqual(b.Entrypoint, ['httpd']);
  assert.deepEqual(b.Cmd, ['-f']);
  assert.equal(b.StopTimeout, 2);
  assert.equal(b.Labels['com.docker.swarm.service.id'], 'svc1');
  assert.equal(b.Labels['com.docker.swarm.task.name'], 'web.3.t1');
  assert.equal(b.Labels['com.docker.swarm.node.id'], 'n1');
  assert.deepEqual(JSON.parse(b.Labels['com.docker.swarm.constraints']), ['node==host2', 'zone!=b']);
  assert.equal(b.HostConfig.NetworkMode, 'cluster');
  assert.deepEqual(b.NetworkingConfig.EndpointsConfig.cluster.Aliases, ['web']);
  assert.deepEqual(constraints({ ContainerSpec: { Image: 'x' } }), []);
});
