import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { createLogger } from '../../lib/log.js';
import { DnsResponder } from './dns.js';
import type { NetworkRecord } from './model.js';
import { NetworkNames } from './names.js';

/** An A query for `name`, sent to the responder; the addresses of the answer, and its rcode. */
async function ask(server: string, name: string): Promise<{ rcode: number; ips: string[] }> {
  const q = Buffer.concat([
    Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]),
    ...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])),
    Buffer.from([0, 0, 1, 0, 1]),
  ]);
  const c = dgram.createSocket('udp4');
  try {
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no answer')), 5000);
      c.on('message', (b) => {
        clearTimeout(t);
        resolve(b);
      });
      c.send(q, 53, server);
    });
    const ips: string[] = [];
    for (let i = 0, off = q.length; i < reply.readUInt16BE(6); i++, off += 16) ips.push([...reply.subarray(off + 12, off + 16)].join('.'));
    return { rcode: reply[3]! & 0x0f, ips };
  } finally {
    c.close();
  }
}

test('the embedded DNS answers its own names first, then asks the remote lookup for names it does not know', async () => {
  const asked: string[] = [];
  const r = new DnsResponder('127.0.0.153', (name) => (name === 'local' ? ['10.192.0.2'] : []), async (name) => {
    asked.push(name);
    return name === 'web' ? ['10.192.1.2', '10.192.2.2'] : [];
  });
  await r.start();
  try {
    assert.deepEqual(await ask('127.0.0.153', 'local'), { rcode: 0, ips: ['10.192.0.2'] });
    assert.deepEqual(await ask('127.0.0.153', 'web'), { rcode: 0, ips: ['10.192.1.2', '10.192.2.2'] });
    assert.deepEqual(asked, ['web']);
  } finally {
    r.stop();
  }
});

test('a cluster network\'s DNS asks the first remote that can answer, with the network\'s name, for names it does not know', async () => {
  const n = {
    Name: 'cluster', Id: 'c1', Driver: 'overlay', IPAM: { Driver: 'default', Options: null, Config: [{ Subnet: '127.0.0.152/29', Gateway: '127.0.0.155' }] },
  } as unknown as NetworkRecord;
  const names = new NetworkNames(() => [], () => n, createLogger('test', 'fatal'));
  const asked: string[] = [];
  const dropAway = names.addRemote(() => undefined); // a manager not connected
  names.addRemote(async (network, name) => {
    asked.push(`${network} ${name}`);
    return ['10.192.3.2'];
  });
  await names.ensure(n);
  try {
    assert.deepEqual(await ask('127.0.0.155', 'web'), { rcode: 0, ips: ['10.192.3.2'] });
    assert.deepEqual(asked, ['cluster web']);
    dropAway();
  } finally {
    names.close();
  }
});
