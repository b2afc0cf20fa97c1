import { Command, Option } from 'commander';

const collect = (v: string, prev: string[] = []) => [...prev, v];

type EngineOpts = Record<string, string | string[] | undefined>;

/** `sampan engine` and `sampan engine cleanup`; the engine's modules load only when one of them runs. */
export function registerEngine(program: Command): void {
  const engine = program
    .command('engine')
    .description('run the container engine in the foreground (Docker Engine API on a unix socket or mutual-TLS TCP); `engine cleanup` removes what a stopped engine left on the host')
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
    .option('--join <url>', 'join a cluster: a manager\'s node endpoint (unix:///PATH, ws://127.0.0.1:PORT, or wss://HOST:PORT with mutual TLS); repeatable, one per manager', collect)
    .option('--join-tlscacert <file>', 'wss:// joins: CA the manager\'s certificate must chain to (default --tlscacert)')
    .option('--join-tlscert <file>', 'wss:// joins: certificate this engine presents to the manager (default --tlscert)')
    .option('--join-tlskey <file>', 'wss:// joins: its key (default --tlskey)')
    .option('--join-token <token>', 'the cluster\'s join token (`sampan cluster token`)')
    .option('--node-name <name>', 'this node\'s name in the cluster (default: the host name)')
    .option('--node-label <k=v>', 'a label of this node that constraints match; repeatable', collect)
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal']))
    .action(async (o: EngineOpts) => {
      const { loadEngineConfig } = await import('../../engine/index.js');
      const { startEngine } = await import('../../engine/index.js');
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
        join: o.join as string[] | undefined,
        joinToken: o.joinToken as string | undefined,
        joinTlscacert: o.joinTlscacert as string | undefined,
        joinTlscert: o.joinTlscert as string | undefined,
        joinTlskey: o.joinTlskey as string | undefined,
        nodeName: o.nodeName as string | undefined,
        nodeLabels: o.nodeLabel as string[] | undefined,
      });
      const running = await startEngine(config);
      await running.done;
      process.exit(0);
    });

  engine
    .command('cleanup')
    .description('remove what a stopped engine left on the host: its networks\' bridges and iptables rules no container uses (refused while the engine runs; lxcfs stays)')
    .option('--root <dir>', 'the engine\'s --root (default /var/lib/sampan)')
    .option('--exec-root <dir>', 'the engine\'s --exec-root (default /run/sampan)')
    .option('--config <file>', 'the engine\'s JSON config file (default /etc/sampan/engine.json)')
    .action(async (o: EngineOpts, cmd: Command) => {
      // options given before `cleanup` are the parent command's
      const parent = (cmd.parent?.opts() ?? {}) as EngineOpts;
      const { loadEngineConfig } = await import('../../engine/index.js');
      const { cleanupHost } = await import('../../engine/index.js');
      const config = await loadEngineConfig({
        config: (o.config ?? parent.config) as string | undefined,
        root: (o.root ?? parent.root) as string | undefined,
        execRoot: (o.execRoot ?? parent.execRoot) as string | undefined,
        logLevel: 'warn',
      });
      const r = await cleanupHost(config);
      for (const b of r.removed) process.stdout.write(`removed bridge ${b} and its iptables rules\n`);
      for (const u of r.inUse) process.stdout.write(`kept bridge ${u.bridge} and its iptables rules: in use (${u.interfaces} container interface${u.interfaces === 1 ? '' : 's'} on it)\n`);
      if (r.chainRemoved) process.stdout.write('removed iptables chain SAMPAN-ISOLATION\n');
      if (!r.removed.length && !r.inUse.length && !r.chainRemoved) process.stdout.write('nothing to remove\n');
    });
}
