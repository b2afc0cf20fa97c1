import { Command, Option } from 'commander';
import { loadEngineConfig, startEngine } from '../engine/index.js';
import { errorMessage } from '../lib/errors.js';
import { registerUp } from './commands/up.js';
import { registerImageSeed } from './commands/seed.js';
import { registerContainerCommands } from './commands/containers.js';
import { registerUpdate } from './commands/update.js';
import { registerBuild } from './commands/build.js';
import { registerImageCommands } from './commands/images.js';
import { registerRegistry } from './commands/registry.js';
import { registerRegistryClientCommands } from './commands/registry-client.js';
import { p2pCommand, registerP2PScheduler } from './commands/p2p-scheduler.js';
import { registerP2pPeer, registerP2pStatus, registerPreheat } from './commands/p2p-peer.js';
import { registerCluster } from './commands/cluster.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

const program = new Command();
program
  .name('sampan')
  .description('Sampan: an open container platform. Daemons (engine) and a Docker-compatible client.')
  .version('0.1.0')
  .option('-H, --host <url>', 'engine API address for client commands (unix:///path or tcp://host:port; env SAMPAN_HOST, DOCKER_HOST)')
  .showHelpAfterError();

program
  .command('engine')
  .description('run the container engine in the foreground (Docker Engine API on a unix socket or mutual-TLS TCP)')
  .option('--root <dir>', 'persistent state: images, containers, volumes (default /var/lib/sampan)')
  .option('--exec-root <dir>', 'runtime state: runc state, exit files, attach sockets (default /run/sampan)')
  .option('--host <url>', 'listen address; repeatable (default unix:///run/sampan/engine.sock)', collect)
  .option('--tlscacert <file>', 'CA that client certificates must chain to (TCP only)')
  .option('--tlscert <file>', 'server certificate (TCP only)')
  .option('--tlskey <file>', 'server key (TCP only)')
  .option('--config <file>', 'JSON config file (default /etc/sampan/engine.json); flags override it')
  .option('--runc <path>', 'OCI runtime binary (default runc)')
  .option('--cgroup-parent <path>', 'cgroup parent for containers (default /sampan)')
  .option('--lxcfs <bool>', 'bind LXCFS views of /proc into containers when lxcfs is installed (default true)')
  .option('--registry-mirror <url>', 'pull mirror, tried before the origin; repeatable ("URL" for docker.io, "HOST[:PORT]=URL" for another registry)', collect)
  .option('--insecure-registry <host>', 'registry (HOST[:PORT] or CIDR) to reach over plain HTTP or unverified TLS; repeatable', collect)
  .option('--default-address-pool <pool>', 'subnets for user networks, as base=CIDR,size=PREFIX (default base=10.90.0.0/16,size=24)')
  .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal']))
  .action(async (o: Record<string, string | string[] | undefined>) => {
    const config = await loadEngineConfig({
      config: o.config as string | undefined,
      root: o.root as string | undefined,
      execRoot: o.execRoot as string | undefined,
      hosts: o.host as string[] | undefined,
      tlscacert: o.tlscacert as string | undefined,
      tlscert: o.tlscert as string | undefined,
      tlskey: o.tlskey as string | undefined,
      runc: o.runc as string | undefined,
      cgroupParent: o.cgroupParent as string | undefined,
      lxcfs: o.lxcfs === undefined ? undefined : !/^(false|0|no|off)$/i.test(String(o.lxcfs)),
      registryMirrors: o.registryMirror as string[] | undefined,
      insecureRegistries: o.insecureRegistry as string[] | undefined,
      defaultAddressPool: o.defaultAddressPool as string | undefined,
      logLevel: o.logLevel as 'info' | undefined,
    });
    const running = await startEngine(config);
    await running.done;
    process.exit(0);
  });

registerUp(program);
registerImageSeed(program);
registerContainerCommands(program);
registerUpdate(program);
registerBuild(program);
registerImageCommands(program);
registerRegistry(program);
registerRegistryClientCommands(program);
registerP2PScheduler(program);
registerP2pPeer(p2pCommand(program));
registerP2pStatus(p2pCommand(program));
registerPreheat(program);
registerCluster(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`sampan: ${errorMessage(err)}\n`);
  process.exit(1);
});
