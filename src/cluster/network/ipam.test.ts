import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCode } from '../../lib/errors.js';
import { intToIp, ipToInt, NetworkIpam, overlaps, parseCidr } from './ipam.js';

test('CIDRs: parsed with their host bits zero, containment and overlap', () => {
  assert.deepEqual(parseCidr('10.192.0.0/12'), { start: ipToInt('10.192.0.0'), prefix: 12 });
  assert.equal(intToIp(ipToInt('10.207.255.254')), '10.207.255.254');
  for (const bad of ['10.192.0.1/12', '10.300.0.0/16', '10.0.0.0', '10.0.0.0/33', 'x/8']) assert.throws(() => parseCidr(bad), (e) => isCode(e, 'INVALID_ARGUMENT'), bad);
  assert.equal(overlaps(parseCidr('10.192.0.0/16'), parseCidr('10.192.128.0/17')), true);
  assert.equal(overlaps(parseCidr('10.192.0.0/16'), parseCidr('10.193.0.0/16')), false);
});

test('a node\'s containers get the addresses of its blocks, never a block\'s first two (its own, the gateway) or last; a full block needs a new one', () => {
  const ipam = new NetworkIpam('10.192.0.0/16', 29); // 8 addresses a block: 5 for containers
  assert.equal(ipam.blockCount, 8192);
  assert.equal(ipam.pick('a'), undefined, 'no block, no address');
  const b0 = ipam.freeBlock()!;
  ipam.lease(b0, 'a');
  const got = Array.from({ length: 5 }, () => intToIp(ipam.pick('a')!));
  assert.deepEqual(got, ['10.192.0.2', '10.192.0.3', '10.192.0.4', '10.192.0.5', '10.192.0.6']);
  assert.equal(ipam.pick('a'), undefined, 'the block is full');
  const b1 = ipam.freeBlock()!;
  assert.equal(intToIp(b1), '10.192.0.8');
  ipam.lease(b1, 'b');
  assert.equal(ipam.pick('a'), undefined, 'another node\'s block is not a\'s');
  assert.equal(intToIp(ipam.pick('b')!), '10.192.0.10');
  ipam.release(ipToInt('10.192.0.3'));
  assert.equal(intToIp(ipam.pick('a')!), '10.192.0.3', 'a freed address is used again');
  assert.deepEqual(ipam.byNode.get('a'), [b0]);
  ipam.unlease(b0);
  assert.equal(ipam.freeBlock(), b0, 'an unleased block is free again');
});

test('a fixed address: outside the subnet is a 400 naming it, a reserved one a 400, a taken one Docker\'s 409; its block\'s holder is known', () => {
  const ipam = new NetworkIpam('10.192.0.0/16', 24);
  ipam.lease(ipToInt('10.192.5.0'), 'a');
  assert.throws(() => ipam.holderOf('10.9.0.1'), (e) => isCode(e, 'INVALID_ARGUMENT') && /10\.192\.0\.0\/16/.test((e as Error).message));
  assert.throws(() => ipam.holderOf('10.192.5.0'), (e) => isCode(e, 'INVALID_ARGUMENT') && /reserved/.test((e as Error).message));
  assert.throws(() => ipam.holderOf('10.192.5.1'), (e) => isCode(e, 'INVALID_ARGUMENT') && /gateway/.test((e as Error).message));
  assert.throws(() => ipam.holderOf('10.192.5.255'), (e) => isCode(e, 'INVALID_ARGUMENT'));
  assert.throws(() => ipam.holderOf('nope'), (e) => isCode(e, 'INVALID_ARGUMENT'));
  assert.deepEqual(ipam.holderOf('10.192.5.7'), { addr: ipToInt('10.192.5.7'), node: 'a' });
  assert.deepEqual(ipam.holderOf('10.192.9.7'), { addr: ipToInt('10.192.9.7'), node: undefined });
  ipam.take(ipToInt('10.192.5.7'));
  assert.throws(() => ipam.holderOf('10.192.5.7'), (e) => isCode(e, 'CONFLICT') && /Address already in use/.test((e as Error).message));
});

test('every block leased: no free block', () => {
  const ipam = new NetworkIpam('10.192.0.0/29', 29);
  ipam.lease(ipam.freeBlock()!, 'a');
  assert.equal(ipam.freeBlock(), undefined);
  assert.deepEqual(Array.from({ length: 6 }, () => ipam.pick('a')).map((ip) => ip && intToIp(ip)), ['10.192.0.2', '10.192.0.3', '10.192.0.4', '10.192.0.5', '10.192.0.6', undefined]);
});
