/**
 * A host whose engine dies in the middle of a batch (kill -9 while its replicas are being created): the batch still
 * ends with every replica running, those of the dead host retried on the others; when the engine comes back, the
 * copies it made of replicas that were retried elsewhere are removed, so each name exists once in the cluster.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { SAMPAN, runCmd, until } from '../harness.js';
import { TestCluster } from './harness.js';

const REPLICAS = 150;

describe('an engine killed mid-batch', () => {
  let c: TestCluster;

  before(async () => {
    c = await TestCluster.start(3, 'spbf');
  });

  after(async () => {
    await c?.stop();
  });

  /** The replicas' names on one engine, asked of the engine itself. */
  const onEngine = async (socket: string): Promise<string[]> => {
    const r = await runCmd('docker', ['ps', '-a', '--filter', 'name=bf-', '--format', '{{.Names}}'], { env: { DOCKER_HOST: `unix://${socket}` } });
    return r.stdout.split('\n').filter(Boolean);
  };

  test('its replicas are retried on the other hosts, and its orphans removed when it returns', async () => {
    const host3 = c.tb.hosts[2]!;
    // how to start the engine again, as the testbed did: same arguments, same network namespace
    const argv = readFileSync(`/proc/${host3.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const env = Object.fromEntries(readFileSync(`/proc/${host3.pid}/environ`, 'utf8').split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));

    const batch = runCmd(SAMPAN, ['--host', c.env().DOCKER_HOST!, 'run', '-d', '--replicas', String(REPLICAS), '--name', 'bf', 'busybox', 'sleep', '600'], { timeoutMs: 240_000 });
    const made = await until(async () => {
      const n = (await onEngine(host3.socket)).length;
      return n >= 3 ? n : 0;
    }, 60_000, 20);
    process.kill(host3.pid, 'SIGKILL');
    assert.ok(made < REPLICAS / 3, `the engine died mid-batch (it had made ${made} of its ~${REPLICAS / 3})`);

    const r = await batch;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`${REPLICAS} of ${REPLICAS} replicas running`));
    const listed = (await c.docker(['ps', '-a', '--filter', 'name=bf-', '--format', '{{.Names}}'])).stdout.split('\n').filter(Boolean);
    const names = new Set(listed.map((n) => n.split('/')[1]));
    assert.equal(names.size, REPLICAS, 'every replica listed once');

    // the engine comes back with what it made, orphans included; the manager removes those
    const proc = spawn('nsenter', [`--net=/run/netns/${host3.netns}`, ...argv], { stdio: 'ignore', detached: true, env });
    proc.unref();
    await until(async () => {
      const nodes = JSON.parse((await c.get('/sampan/v1/nodes')).body) as Array<{ name: string; state: string }>;
      return nodes.find((n) => n.name === host3.name)?.state === 'up';
    }, 120_000);
    const owners = async () => new Map((await c.docker(['ps', '-a', '--filter', 'name=bf-', '--format', '{{.Names}}'])).stdout.split('\n').filter(Boolean).map((n) => [n.split('/')[1]!, n.split('/')[0]!]));
    await until(async () => {
      const where = await owners();
      const mine = await onEngine(host3.socket);
      // every name the engine holds is one the manager places there
      return mine.every((n) => where.get(n) === host3.name);
    }, 90_000, 200);
    const where = await owners();
    assert.equal(where.size, REPLICAS);
    const total = (await Promise.all(c.tb.hosts.map((h) => onEngine(h.socket)))).flat();
    assert.equal(total.length, REPLICAS, 'each replica exists on exactly one engine');
    assert.equal(new Set(total).size, REPLICAS);
  });
});
