import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { freePorts } from './ports.js';

test('free ports: distinct, below the ephemeral range, never handed out twice, bindable', async () => {
  const ephemeral = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  const a = await freePorts(20);
  const b = await freePorts(20);
  const all = [...a, ...b];
  assert.equal(new Set(all).size, 40);
  assert.ok(all.every((p) => p >= 10_000 && p < ephemeral), all.join(' '));
  // each can be bound (on every address) by the process it is for
  for (const p of all) {
    const s = net.createServer();
    await new Promise<void>((resolve, reject) => s.once('error', reject).listen(p, '0.0.0.0', resolve));
    await new Promise((r) => s.close(r));
  }
});
