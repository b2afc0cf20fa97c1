import path from 'node:path';
import type { Command } from 'commander';
import { seedImage } from './seed.js';
import { parseBytes } from '../../lib/units.js';

/**
 * The all-in-one on loopback, a one-node cluster: etcd (one member, data under the root), a cluster manager (its
 * Docker API and node endpoint on unix sockets beside the engine's) and the engine joined to it, base image seeded.
 */
export function registerUp(program: Command): void {
  program
    .command('up')
    .description('start the all-in-one on this host in the foreground: the engine on a unix socket (base image seeded), joined to a one-node cluster (etcd and a manager on unix sockets beside it)')
    .option('--root <dir>', 'state directory (etcd\'s data under <root>/etcd)', '/var/lib/sampan')
    .option('--exec-root <dir>', 'runtime directory', '/run/sampan')
    .option('--socket <path>', 'engine socket (the cluster\'s are cluster.sock and cluster-node.sock beside it)', '/run/sampan/engine.sock')
    .option('--btrfs-image <size>', 'keep the root on btrfs in a sparse image of this size (<root>.btrfs), for exact --storage-opt size= quotas')
    .option('--ui-listen <host:port>', 'also serve the web dashboard at http://HOST:PORT/ui/ (loopback) and print a login link with an admin token made at this start')
    .action(async (o: { root: string; execRoot: string; socket: string; btrfsImage?: string; uiListen?: string }) => {
      const { loadEngineConfig, startEngine, mountBtrfsRoot } = await import('../../engine/index.js');
      const { EtcdCluster, loadManagerConfig, startManager, newToken, uiTokens, issueUiToken } = await import('../../cluster/index.js');
      if (o.btrfsImage) await mountBtrfsRoot(o.root, parseBytes(o.btrfsImage));
      const host = `unix://${o.socket}`;
      const clusterHost = `unix://${path.join(path.dirname(o.socket), 'cluster.sock')}`;
      const nodeEndpoint = `unix://${path.join(path.dirname(o.socket), 'cluster-node.sock')}`;
      // a signal during the start stops what started, once it has (etcd runs detached: it must not be left behind)
      const signalled = new Promise<void>((resolve) => {
        process.once('SIGTERM', resolve);
        process.once('SIGINT', resolve);
      });
      // a new token at each start: nothing but this process's engine joins, and the hash in etcd is replaced
      const token = newToken();
      const etcd = await EtcdCluster.start({ dir: path.join(o.root, 'etcd') });
      const stops: Array<() => Promise<void>> = [() => etcd.stop()];
      let dashboard: string | undefined;
      const stopAll = async () => {
        for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
      };
      try {
        const manager = await startManager(await loadManagerConfig({ etcd: etcd.endpoints, listen: clusterHost, nodeListen: nodeEndpoint, joinToken: token, ...(o.uiListen && { uiListen: o.uiListen }) }), { handleSignals: false });
        stops.push(() => manager.shutdown());
        if (o.uiListen) {
          const t = await uiTokens(etcd.endpoints, 'default', (s) => issueUiToken(s, 'admin'));
          dashboard = `http://${o.uiListen}/ui/#token=${t.token}`;
        }
        const config = await loadEngineConfig({ root: o.root, execRoot: o.execRoot, hosts: [host], join: [nodeEndpoint], joinToken: token });
        const running = await startEngine(config, { handleSignals: false });
        stops.push(() => running.shutdown());
        if (!running.engine.images.has('busybox:latest')) {
          for (const l of await seedImage(host)) running.log.info(l);
        }
      } catch (err) {
        await stopAll();
        throw err;
      }
      process.stdout.write(
        [
          '',
          'Sampan is up. Use it with the docker CLI:',
          '',
          `  export DOCKER_HOST=${host}`,
          '  docker run --rm busybox echo hello from sampan',
          '',
          'The same engine as a one-node cluster, through its manager:',
          '',
          `  export DOCKER_HOST=${clusterHost}`,
          '  sampan node ls',
          '',
          ...(dashboard ? ['The web dashboard (an admin token made at this start, in the link):', '', `  ${dashboard}`, ''] : []),
          'Press Ctrl-C to stop the engine, the manager and etcd (containers keep running).',
          '',
        ].join('\n'),
      );
      // engine first (it leaves the manager), then the manager, then etcd
      await signalled;
      await stopAll();
      process.exit(0);
    });
}
