import path from 'node:path';
import { Command, Option } from 'commander';
import { createLogger } from '../../lib/log.js';
import { invalid } from '../../lib/errors.js';
import { Testbed } from '../../cluster/index.js';

const count = (flag: string) => (v: string): number => {
  if (!/^\d+$/.test(v)) throw invalid(`${flag} ${v}: not a non-negative integer`);
  return Number(v);
};

interface TestbedOpts {
  hosts: number;
  managers: number;
  etcdMembers: '1' | '3';
  dir: string;
  logLevel?: string;
}

export function registerCluster(program: Command): void {
  const cluster = program.command('cluster').description('the cluster: a testbed of emulated hosts on this machine');
  cluster
    .command('testbed')
    .description('start etcd and N emulated hosts (network namespaces, each with its own engine) on this machine; print "ready", write DIR/testbed.json; SIGTERM tears everything down')
    .requiredOption('--hosts <n>', 'emulated hosts (1 to 250)', count('--hosts'))
    .option('--managers <m>', 'cluster managers (none yet: the manager is not built)', count('--managers'), 0)
    .addOption(new Option('--etcd-members <n>', 'etcd members').choices(['1', '3']).default('1'))
    .requiredOption('--dir <dir>', 'where the testbed keeps its hosts\' roots, etcd\'s data, logs and testbed.json')
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal']))
    .action(async (o: TestbedOpts) => {
      if (o.managers > 0) throw invalid(`--managers ${o.managers}: the cluster manager is not built yet; use --managers 0 (etcd and hosts only)`);
      const log = createLogger('sampan-testbed', o.logLevel);
      const tb = new Testbed({ dir: o.dir, hosts: o.hosts, etcdMembers: Number(o.etcdMembers) as 1 | 3, log });
      let signalled = false;
      // every signal, the second too, waits for the one teardown: an interrupted teardown would leave things behind
      const onSignal = () => {
        signalled = true;
        void tb.stop().then(() => process.exit(0));
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      try {
        await tb.start();
      } catch (err) {
        if (signalled) return;
        throw err;
      }
      const d = tb.description;
      process.stdout.write(`ready: ${d.hosts.length} hosts on ${d.network.bridge} (${d.network.subnet}), etcd ${d.etcd.endpoints.join(',')}, ${path.join(tb.dir, 'testbed.json')}\n`);
      // the testbed runs until a signal: keep the event loop alive meanwhile
      setInterval(() => undefined, 1 << 30);
    });
}
