import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import { TestEngine, until, sleep, runCmd } from '../harness.js';
import { findLxcfsMount } from '../../src/engine/lxcfs.js';

let e: TestEngine;
before(async () => {
  e = await TestEngine.start();
});
after(async () => {
  await e?.cleanup();
});

const inspect = async (fmt: string, name: string) => (await e.docker(['inspect', '-f', fmt, name])).stdout.trim();

test('an OOM kill inside a running container is an oom event at once; the container runs on', async () => {
  const since = Math.floor(Date.now() / 1000) - 1;
  assert.equal((await e.docker(['run', '-d', '--name', 'oomlive', '-m', '32m', 'busybox', 'sleep', '300'])).code, 0);
  const r = await e.docker(['exec', 'oomlive', 'dd', 'if=/dev/zero', 'of=/dev/null', 'bs=200M', 'count=1']);
  assert.equal(r.code, 137, r.stderr);
  const events = () => e.docker(['events', '--since', String(since), '--until', String(Math.floor(Date.now() / 1000) + 1), '--filter', 'container=oomlive', '--filter', 'event=oom', '--format', '{{.Action}}']);
  await until(async () => /oom/.test((await events()).stdout), 5000);
  assert.equal(await inspect('{{.State.Running}}', 'oomlive'), 'true');
  await e.docker(['rm', '-f', 'oomlive']);
  assert.equal((await events()).stdout.match(/oom/g)?.length, 1, 'one oom event, not another at exit');
});

test('a memory limit is enforced (OOM kill in inspect and events) and raised live with update', async () => {
  const since = Math.floor(Date.now() / 1000) - 1;
  // dd's 200 MiB buffer cannot fit in 32 MiB
  const r = await e.docker(['run', '--name', 'oom', '-m', '32m', 'busybox', 'dd', 'if=/dev/zero', 'of=/dev/null', 'bs=200M', 'count=1']);
  assert.equal(r.code, 137, r.stderr);
  assert.equal(await inspect('{{.State.OOMKilled}} {{.State.ExitCode}} {{.HostConfig.Memory}}', 'oom'), 'true 137 33554432');
  const ev = await e.docker(['events', '--since', String(since), '--until', String(Math.floor(Date.now() / 1000) + 1), '--filter', 'event=oom', '--format', '{{.Action}}']);
  assert.match(ev.stdout, /oom/);
  await e.docker(['rm', 'oom']);

  assert.equal((await e.docker(['run', '-d', '--name', 'grow', '-m', '32m', 'busybox', 'sleep', '300'])).code, 0);
  const up = await e.docker(['update', '-m', '256m', '--memory-swap', '512m', 'grow']);
  assert.equal(up.code, 0, up.stderr);
  assert.equal(await inspect('{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}', 'grow'), '268435456 536870912');
  // the new limit is live: 100 MiB fits now
  const big = await e.docker(['exec', 'grow', 'dd', 'if=/dev/zero', 'of=/dev/null', 'bs=100M', 'count=1']);
  assert.equal(big.code, 0, big.stderr);
  const rp = await e.docker(['update', '--restart', 'on-failure:3', 'grow']);
  assert.equal(rp.code, 0, rp.stderr);
  assert.equal(await inspect('{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}', 'grow'), 'on-failure 3');
  await e.docker(['rm', '-f', 'grow']);
});

test('Docker-like validation of resource settings', async () => {
  const small = await e.docker(['create', '-m', '4m', 'busybox', 'true']);
  assert.notEqual(small.code, 0);
  assert.match(small.stderr, /Minimum memory limit allowed is 6MB/);
  const swap = await e.docker(['create', '-m', '64m', '--memory-swap', '32m', 'busybox', 'true']);
  assert.notEqual(swap.code, 0);
  assert.match(swap.stderr, /memoryswap limit should be larger than memory limit/);
  const ul = await e.docker(['run', '--rm', '--ulimit', 'nofile=1000000:1000000', 'busybox', 'true']);
  assert.notEqual(ul.code, 0);
  assert.match(ul.stderr, /ulimit nofile.*above this host's hard limit/);
  const ok = await e.docker(['run', '--rm', '--ulimit', 'nofile=1024:2048', 'busybox', 'sh', '-c', 'ulimit -n; ulimit -Hn']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, '1024\n2048\n');
  // an exec session has the container's limits too
  await e.docker(['run', '-d', '--name', 'limited', '--ulimit', 'nofile=1024:2048', '--oom-score-adj', '300', 'busybox', 'sleep', '300']);
  const ex = await e.docker(['exec', 'limited', 'sh', '-c', 'ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj']);
  assert.equal(ex.stdout, '1024\n2048\n300\n', ex.stderr);
  await e.docker(['rm', '-f', 'limited']);
});

test('--cpus throttles, --pids-limit is enforced, batch priority applies its preset', async () => {
  assert.equal((await e.docker(['run', '-d', '--name', 'busy', '--cpus', '0.5', 'busybox', 'sh', '-c', 'while :; do :; done'])).code, 0);
  const id = await inspect('{{.Id}}', 'busy');
  const stat = `/sys/fs/cgroup/cpu/sampan-test-${e.dir.split('/').pop()}/${id}/cpu.stat`;
  const throttled = async () => Number(/nr_throttled (\d+)/.exec(await fs.readFile(stat, 'utf8'))?.[1] ?? 0);
  const quota = (await fs.readFile(stat.replace('cpu.stat', 'cpu.cfs_quota_us'), 'utf8')).trim();
  assert.equal(quota, '50000');
  const t0 = await throttled();
  await until(async () => (await throttled()) > t0 + 3, 10_000);

  // stats: one JSON object with Docker's fields; the CLI shows the limit and the pids
  const raw = await e.docker(['stats', '--no-stream', '--format', '{{json .}}', 'busy']);
  assert.equal(raw.code, 0, raw.stderr);
  const row = JSON.parse(raw.stdout.trim()) as { CPUPerc: string; MemUsage: string; PIDs: string };
  assert.ok(Number(row.PIDs) >= 1, raw.stdout);
  assert.ok(parseFloat(row.CPUPerc) > 5, `cpu % ${row.CPUPerc}`);
  // raised live
  const up = await e.docker(['update', '--cpus', '1.5', '--pids-limit', '50', 'busy']);
  assert.equal(up.code, 0, up.stderr);
  assert.equal((await fs.readFile(stat.replace('cpu.stat', 'cpu.cfs_quota_us'), 'utf8')).trim(), '150000');
  assert.equal((await fs.readFile(stat.replace('/cpu/', '/pids/').replace('cpu.stat', 'pids.max'), 'utf8')).trim(), '50');
  assert.equal(await inspect('{{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}', 'busy'), '1500000000 50');

  // the stream: one JSON object a second, precpu_stats carrying the previous sample
  const lines = await new Promise<string[]>((resolve, reject) => {
    const got: string[] = [];
    let buf = '';
    const req = http.get({ socketPath: e.sock, path: '/containers/busy/stats' }, (res) => {
      res.on('data', (c: Buffer) => {
        buf += c.toString();
        const parts = buf.split('\n');
        buf = parts.pop()!;
        got.push(...parts.filter(Boolean));
        if (got.length >= 2) {
          req.destroy();
          resolve(got);
        }
      });
    });
    req.on('error', (err) => (got.length >= 2 ? undefined : reject(err)));
  });
  const [a, b] = lines.map((l) => JSON.parse(l) as { read: string; preread: string; cpu_stats: { cpu_usage: { total_usage: number } }; precpu_stats: { cpu_usage: { total_usage: number } } });
  assert.equal(b!.preread, a!.read);
  assert.equal(b!.precpu_stats.cpu_usage.total_usage, a!.cpu_stats.cpu_usage.total_usage);
  assert.ok(b!.cpu_stats.cpu_usage.total_usage > a!.cpu_stats.cpu_usage.total_usage);
  await e.docker(['rm', '-f', 'busy']);

  assert.equal((await e.docker(['run', '-d', '--name', 'lim', '-m', '64m', 'busybox', 'sleep', '300'])).code, 0);
  const s = await e.docker(['stats', '--no-stream', '--format', '{{.MemUsage}} {{.PIDs}}', 'lim']);
  assert.match(s.stdout.trim(), /\/ 64MiB 1$/);
  await e.docker(['rm', '-f', 'lim']);

  // eight pids at most: the shell and seven sleeps; the rest cannot fork
  const pids = await e.docker(['run', '--rm', '--pids-limit', '8', 'busybox', 'sh', '-c', 'n=0; for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 3 & n=$((n+1)); done; cat /sys/fs/cgroup/pids/pids.max; wait; echo started $n']);
  assert.match(pids.stderr, /fork|Resource temporarily unavailable/i, `${pids.stdout} ${pids.stderr}`);

  assert.equal((await e.docker(['create', '--name', 'batch', '-l', 'com.sampan.priority=batch', 'busybox', 'true'])).code, 0);
  assert.equal(await inspect('{{.HostConfig.CpuShares}} {{.HostConfig.OomScoreAdj}}', 'batch'), '2 1000');
  await e.docker(['rm', 'batch']);
});

test('inside --memory 128m --cpus 0.5 the LXCFS view shows 128 MiB and 1 CPU', async (t) => {
  // the engine started lxcfs (or found it) if it is installed
  await sleep(100);
  if (!(await findLxcfsMount())) {
    t.skip('lxcfs is not installed');
    return;
  }
  const r = await e.docker(['run', '--rm', '--memory', '128m', '--cpus', '0.5', 'busybox', 'sh', '-c', 'grep MemTotal /proc/meminfo; grep -c ^processor /proc/cpuinfo']);
  assert.equal(r.code, 0, r.stderr);
  const [mem, cpus] = r.stdout.trim().split('\n');
  assert.match(mem!, /^MemTotal:\s+131072 kB$/);
  assert.equal(cpus, '1');
});

test('--lxcfs=false leaves the host\'s /proc/meminfo in place', async (t) => {
  if (!(await findLxcfsMount())) {
    t.skip('lxcfs is not installed');
    return;
  }
  const off = await TestEngine.start({ args: ['--lxcfs=false'] });
  try {
    const r = await off.docker(['run', '--rm', '-m', '128m', 'busybox', 'sh', '-c', 'grep MemTotal /proc/meminfo; mount | grep -c lxcfs']);
    assert.doesNotMatch(r.stdout, /131072 kB/);
    assert.match(r.stdout, /\n0\n$/);
  } finally {
    await off.cleanup();
  }
});

test('after lxcfs restarts, running containers get working /proc files again', async (t) => {
  if (!(await findLxcfsMount())) {
    t.skip('lxcfs is not installed');
    return;
  }
  // a private lxcfs for this engine, so killing it disturbs nobody else
  const dir = await fs.mkdtemp('/tmp/sp-lx-');
  const lx = `${dir}/lxcfs`;
  await fs.writeFile(`${dir}/engine.json`, JSON.stringify({ lxcfsDir: lx }));
  const en = await TestEngine.start({ args: ['--config', `${dir}/engine.json`] });
  const memTotal = async () => (await en.docker(['exec', 'lx', 'grep', 'MemTotal', '/proc/meminfo'])).stdout.trim();
  try {
    assert.equal((await en.docker(['run', '-d', '--name', 'lx', '-m', '128m', 'busybox', 'sleep', '300'])).code, 0);
    assert.match(await memTotal(), /131072 kB/);
    const pid = Number((await fs.readFile(`${lx}.pid`, 'utf8')).trim());
    process.kill(pid, 'SIGKILL');
    await until(async () => (await en.docker(['exec', 'lx', 'cat', '/proc/meminfo'])).code !== 0, 5000);
    // the engine starts lxcfs again and repairs the container's binds
    await until(async () => /131072 kB/.test(await memTotal()), 30_000, 500);
    await en.docker(['rm', '-f', 'lx']);
  } finally {
    await en.cleanup();
    const p = Number((await fs.readFile(`${lx}.pid`, 'utf8').catch(() => '0')).trim());
    await runCmd('umount', ['-l', lx]);
    if (p) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await sleep(200);
    await fs.rm(dir, { recursive: true, force: true });
  }
});
