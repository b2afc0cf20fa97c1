/**
 * `sampan node ls|inspect|update` and the manager's /metrics on a 1-host testbed: labels set on a node are what
 * constraints see, a drained node takes no new containers, the node's state is kept in etcd, an unknown node is a 404.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import type { NodeView, TestbedDescription } from '../../src/cluster/index.js';
import { TestCluster } from './harness.js';

describe('node commands and /metrics against a manager (1-host testbed)', () => {
  let c: TestCluster;
  let tb: TestbedDescription;
  const docker = (args: string[]) => c.docker(args);
  const sampan = (args: string[]) => c.sampan(args);
  const get = (p: string) => c.get(p);
  /** The node's record as etcd holds it. */
  const stored = async (): Promise<{ labels: Record<string, string>; availability?: string }> => {
    const etcd = new Etcd3({ hosts: tb.etcd.endpoints });
    try {
      const all = await etcd.getAll().prefix('/sampan/cluster/testbed/nodes/').strings();
      return JSON.parse(Object.values(all)[0]!) as { labels: Record<string, string>; availability?: string };
    } finally {
      etcd.close();
    }
  };

  before(async () => {
    c = await TestCluster.start(1, 'spnc');
    ({ tb } = c);
  });

  after(async () => {
    await c?.stop();
  });

  test('node ls shows the node Ready and Active, as a table and as JSON; inspect shows it; an unknown node is a 404 naming it', async () => {
    const ls = await sampan(['node', 'ls']);
    assert.equal(ls.code, 0, ls.stderr);
    const [head, row] = ls.stdout.trim().split('\n');
    assert.match(head!, /^ID\s+HOSTNAME\s+STATUS\s+AVAILABILITY\s+CONTAINERS/);
    assert.match(row!, /^\S+\s+host1\s+Ready\s+Active\s+0\s/);
    const json = await sampan(['node', 'ls', '--format', 'json']);
    const nodes = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as NodeView);
    assert.deepEqual(nodes.map((n) => [n.name, n.state, n.availability]), [['host1', 'up', 'active']]);
    const inspect = await sampan(['node', 'inspect', 'host1']);
    assert.equal(inspect.code, 0, inspect.stderr);
    const [n] = JSON.parse(inspect.stdout) as NodeView[];
    assert.equal(n!.id, nodes[0]!.id);
    assert.equal(n!.addr, tb.hosts[0]!.ip);
    for (const args of [['node', 'inspect', 'nosuch'], ['node', 'update', '--availability', 'drain', 'nosuch']]) {
      const r = await sampan(args);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /No such node: nosuch/);
    }
    const raw = await get('/sampan/v1/nodes/nosuch');
    assert.equal(raw.status, 404);
    assert.match(raw.body, /No such node: nosuch/);
  });

  test('a label added with node update is what constraints see, kept in etcd; removed, the constraint fails and nothing is created', async () => {
    const add = await sampan(['node', 'update', '--label-add', 'zone=eu', 'host1']);
    assert.equal(add.code, 0, add.stderr);
    assert.deepEqual((await stored()).labels, { zone: 'eu' });
    const run = await docker(['run', '-d', '--name', 'lab1', '-e', 'constraint:zone==eu', 'busybox', 'sleep', '600']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal((await docker(['inspect', '-f', '{{.Node.Name}} {{index .Node.Labels "zone"}}', 'lab1'])).stdout.trim(), 'host1 eu');
    assert.equal((await sampan(['node', 'update', '--label-rm', 'zone', 'host1'])).code, 0);
    assert.deepEqual((await stored()).labels, {});
    const refused = await docker(['run', '-d', '--name', 'lab2', '-e', 'constraint:zone==eu', 'busybox', 'sleep', '600']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /constraint zone==eu/);
    assert.equal((await docker(['ps', '-aq', '--filter', 'name=lab2'])).stdout.trim(), '');
  });

  test('a drained node takes no new containers and keeps its own; made active again it takes them', async () => {
    assert.equal((await sampan(['node', 'update', '--availability', 'drain', 'host1'])).code, 0);
    assert.equal((await stored()).availability, 'drain');
    assert.match((await sampan(['node', 'ls'])).stdout, /host1\s+Ready\s+Drain/);
    const refused = await docker(['run', '-d', '--name', 'dr1', 'busybox', 'sleep', '600']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /drained/);
    assert.equal((await docker(['inspect', '-f', '{{.State.Running}}', 'lab1'])).stdout.trim(), 'true');
    assert.equal((await sampan(['node', 'update', '--availability', 'active', 'host1'])).code, 0);
    const run = await docker(['run', '-d', '--name', 'dr1', 'busybox', 'sleep', '600']);
    assert.equal(run.code, 0, run.stderr);
  });

  test('/metrics has the manager\'s metrics beside the API\'s: nodes by state, containers, placements, latencies, batch replicas', async () => {
    const batch = await sampan(['run', '-d', '--replicas', '2', '--name', 'mb', 'busybox', 'sleep', '600']);
    assert.equal(batch.code, 0, batch.stderr);
    const m = (await get('/metrics')).body;
    const value = (re: RegExp) => Number(re.exec(m)?.[1]);
    assert.equal(value(/^sampan_cluster_nodes\{state="up",availability="active"\} (\d+)$/m), 1);
    assert.equal(value(/^sampan_cluster_nodes\{state="down",availability="active"\} (\d+)$/m), 0);
    assert.equal(value(/^sampan_cluster_containers (\d+)$/m), 4);
    // lab1, dr1 and the batch's two
    assert.equal(value(/^sampan_cluster_placements_total (\d+)$/m), 4);
    assert.ok(value(/^sampan_cluster_scheduling_seconds_count (\d+)$/m) >= 3);
    assert.ok(value(/^sampan_cluster_etcd_txn_seconds_count (\d+)$/m) >= 4);
    assert.equal(value(/^sampan_cluster_batch_replicas_total\{result="running"\} (\d+)$/m), 2);
    assert.match(m, /^sampan_cluster_http_requests_total\{/m);
  });
});
