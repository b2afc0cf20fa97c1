/**
 * The testbed's SwarmProxy (--clusters C > 1): `sampan cluster proxy` on a loopback port in front of the clusters,
 * with a CA of its own in DIR/proxy/ and, per cluster, a client certificate whose CN is the cluster's name
 * (DIR/proxy/clients/NAME/, laid out for DOCKER_CERT_PATH): the proxy routes it there without a --map.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readTls } from '../../lib/tls.js';
import { terminate, waitReady } from '../proc.js';
import { freePorts } from '../../lib/ports.js';
import { makeCa, makeCert } from './certs.js';
import type { TestbedComponent } from './testbed.js';

const SAMPAN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../bin/sampan');

export function proxyComponent(dir: string, clusters: string[]): TestbedComponent {
  return async (tb) => {
    const d = path.join(dir, 'proxy');
    const ca = await makeCa(d, 'sampan testbed proxy CA');
    const server = await makeCert(ca, path.join(d, 'server'), 'proxy', ['127.0.0.1', 'localhost']);
    const clients = Object.fromEntries(await Promise.all(clusters.map(async (c) => [c, await makeCert(ca, path.join(d, 'clients', c), c, [])] as const)));
    const [port] = await freePorts(1);
    const host = `tcp://127.0.0.1:${port}`;
    const fd = openSync(path.join(d, 'proxy.log'), 'a');
    const proc = (() => {
      try {
        return spawn(SAMPAN, [
          'cluster', 'proxy', '--listen', host, '--tlscacert', server.ca, '--tlscert', server.cert, '--tlskey', server.key,
          ...clusters.flatMap((c) => ['--cluster', `${c}=${tb.etcdEndpoints.join(',')}`]),
        ], { stdio: ['ignore', fd, fd], detached: true });
      } finally {
        closeSync(fd);
      }
    })();
    const stop = () => terminate(proc, 10_000);
    // ready once each cluster's leader answers through it
    const ping = async (c: string) => new Promise<boolean>((resolve, reject) => {
      void readTls(clients[c]!).then((t) => https.get({ ...t, host: '127.0.0.1', port, path: '/_ping' }, (res) => {
        res.resume();
        resolve(res.statusCode === 200 && res.headers['x-sampan-cluster'] === c);
      }).on('error', reject), reject);
    });
    try {
      await waitReady('proxy', proc, async () => (await Promise.all(clusters.map(ping))).every(Boolean), 60_000, tb.aborted);
    } catch (err) {
      await stop();
      throw err;
    }
    tb.log.info({ host, clusters }, 'proxy ready');
    return { proxy: { pid: proc.pid ?? 0, host, clients }, stop };
  };
}
