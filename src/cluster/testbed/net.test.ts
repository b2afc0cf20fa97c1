import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_HOSTS, MAX_SLOTS, bridgeName, cidrRange, hostNet, hostsSubnet } from './net.js';

test('cidrRange: first and last address of a prefix, wherever the address sits in it', () => {
  assert.deepEqual(cidrRange('10.222.3.0/24'), [0x0ade0300, 0x0ade03ff]);
  assert.deepEqual(cidrRange('10.222.3.77/24'), [0x0ade0300, 0x0ade03ff]);
  assert.deepEqual(cidrRange('192.0.2.2'), [0xc0000202, 0xc0000202]);
  assert.deepEqual(cidrRange('0.0.0.0/0'), [0, 0xffffffff]);
});

test('hosts of every slot get addresses in their slot\'s /24, container ranges of their own, and names Linux accepts', () => {
  const subnets = new Set<string>();
  for (const slot of [0, MAX_SLOTS - 1]) {
    const [lo, hi] = cidrRange(hostsSubnet(slot));
    assert.ok(bridgeName(slot).length <= 15);
    for (const i of [1, 2, MAX_HOSTS]) {
      const h = hostNet(slot, i);
      const [ip] = cidrRange(h.ip);
      assert.ok(ip! > lo + 1 && ip! < hi, `${h.ip} in ${hostsSubnet(slot)}, not its gateway or broadcast`);
      assert.ok(h.veth.length <= 15, `interface name ${h.veth}`);
      for (const s of [h.bridgeSubnet, h.addressPool.replace(/^base=|,size=\d+$/g, '')]) {
        assert.ok(!subnets.has(s), `${s} given twice`);
        subnets.add(s);
      }
    }
  }
});
