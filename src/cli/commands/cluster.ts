import path from 'node:path';
import { Command, Option } from 'commander';
import { createLogger } from '../../lib/log.js';
import { invalid, notFound } from '../../lib/errors.js';
import { collect } from './options.js';

const count = (flag: string) => (v: string): number => {
  if (!/^\d+$/.test(v)) throw invalid(`${flag} ${v}: not a non-negative integer`);
  return Number(v);
};
const list = (v: string, prev: string[] = []) => [...prev, ...v.split(',').map((s) => s.trim()).filter(Boolean)];
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

interface TestbedOpts {
  hosts: number;
  managers: number;
  etcdMembers: '1' | '3';
  dir: string;
  tls?: boolean;
  clusters: number;
  registry?: boolean;
  logLevel?: string;
}

/** `sampan cluster manager|relay|token|testbed`; the cluster's modules (etcd's client among them) load only when one runs. */
export function registerCluster(program: Command): void {
  const cluster = program.command('cluster').description('the cluster: its manager, join tokens, and a testbed of emulated hosts on this machine');
  cluster
    .command('manager')
    .description('run a cluster manager in the foreground: engines join it (`sampan engine --join`), and it serves the Docker API over all of them; state in etcd')
    .option('--etcd <urls>', 'etcd endpoints, comma-separated or repeated (http://127.0.0.1:2379)', list)
    .option('--listen <addr>', 'the Docker API: unix:///PATH, or tcp://HOST:PORT with mutual TLS (default unix:///run/sampan/cluster.sock)')
    .option('--node-listen <addr>', 'where engines join: unix:///PATH, ws://127.0.0.1:PORT, or wss://HOST:PORT with mutual TLS (default unix:///run/sampan/cluster-node.sock)')
    .option('--tlscacert <file>', 'tcp:// and wss://: CA that clients\' and engines\' certificates must chain to')
    .option('--tlscert <file>', 'tcp:// and wss://: the manager\'s certificate')
    .option('--tlskey <file>', 'tcp:// and wss://: its key')
    .option('--engine-tlscacert <file>', 'engines whose API is tcp://: CA their certificates chain to (default --tlscacert)')
    .option('--engine-tlscert <file>', 'engines whose API is tcp://: certificate the manager presents to them (default --tlscert)')
    .option('--engine-tlskey <file>', 'engines whose API is tcp://: its key (default --tlskey)')
    .option('--name <name>', 'the cluster\'s name: its keys in etcd (default "default")')
    .option('--join-token <token>', 'the join token engines must present (default: the one in etcd; see `sampan cluster token`)')
    .option('--heartbeat <ms>', 'heartbeat interval asked of the engines; a node missed for 3 is down (default 5000)', count('--heartbeat'))
    .addOption(new Option('--strategy <s>', 'placement strategy (default spread)').choices(['spread', 'binpack', 'random']))
    .option('--scheduler-url <url>', 'an external scheduler: it is POSTed the request and the nodes that passed the filters, and answers the placements')
    .option('--scheduler-timeout <ms>', 'how long the external scheduler may take to answer (default 5000)', count('--scheduler-timeout'))
    .option('--lease-ttl <s>', 'the election lease\'s TTL in seconds: how long a dead leader leads on (default 2)', count('--lease-ttl'))
    .option('--version <v>', 'the version this manager stands for election with (default its own): a ready standby of a higher version takes over')
    .option('--pool <cidr>', 'cluster networks: the pool their subnets come from (default 10.192.0.0/12)')
    .option('--network-size <prefix>', 'cluster networks: the prefix length of a network made without --subnet (default 16)', count('--network-size'))
    .option('--block-size <prefix>', 'cluster networks: the prefix length of the blocks hosts lease (default 24)', count('--block-size'))
    .addOption(new Option('--routing <r>', 'cluster networks: the routing of new networks (default host-gw)').choices(['host-gw', 'vxlan']))
    .option('--prepull-per-host <n>', 'pre-pulls (a release\'s next hosts pulling its image ahead) one host runs at once (default 2)', count('--prepull-per-host'))
    .option('--prepull-per-registry <n>', 'pre-pulls from one registry at once, over all hosts (default 16)', count('--prepull-per-registry'))
    .option('--ui-listen <host:port>', 'the dashboard for browsers at http://HOST:PORT/ui/ (loopback; elsewhere HTTPS with --tlscert): every other route there needs a token of `sampan cluster token --ui`')
    .option('--registry-url <url>', 'an image registry (sampan registry) whose manifest cache and mirror hit rate the dashboard shows; repeatable', collect)
    .option('--p2p-scheduler <url>', 'the P2P scheduler (sampan p2p scheduler): a release\'s image is preheated there, and the dashboard plots its traffic (bytes from peers and from the registry, per repository)')
    .option('--config <file>', 'JSON config file; flags and SAMPAN_CLUSTER_* override it')
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS))
    .action(async (o: Record<string, unknown>) => {
      const { loadManagerConfig, startManager } = await import('../../cluster/index.js');
      const cfg = await loadManagerConfig({
        config: o.config as string | undefined, etcd: o.etcd as string[] | undefined, listen: o.listen as string | undefined,
        nodeListen: o.nodeListen as string | undefined, name: o.name as string | undefined, joinToken: o.joinToken as string | undefined,
        tlscacert: o.tlscacert as string | undefined, tlscert: o.tlscert as string | undefined, tlskey: o.tlskey as string | undefined,
        engineTlscacert: o.engineTlscacert as string | undefined, engineTlscert: o.engineTlscert as string | undefined, engineTlskey: o.engineTlskey as string | undefined,
        heartbeatMs: o.heartbeat as number | undefined, strategy: o.strategy as 'spread' | undefined,
        schedulerUrl: o.schedulerUrl as string | undefined, schedulerTimeoutMs: o.schedulerTimeout as number | undefined, logLevel: o.logLevel as 'info' | undefined,
        leaseTtl: o.leaseTtl as number | undefined, version: o.version as string | undefined,
        pool: o.pool as string | undefined, networkSize: o.networkSize as number | undefined, blockSize: o.blockSize as number | undefined, routing: o.routing as 'host-gw' | undefined,
        prepullPerHost: o.prepullPerHost as number | undefined, prepullPerRegistry: o.prepullPerRegistry as number | undefined, p2pScheduler: o.p2pScheduler as string | undefined,
        uiListen: o.uiListen as string | undefined, registryUrls: o.registryUrl as string[] | undefined,
      });
      const m = await startManager(cfg);
      await m.done;
      process.exit(0);
    });
  cluster
    .command('relay')
    .description('run a node relay in the foreground: engines join it as they would a manager, and it carries all their connections to the manager over one link (for clusters with more hosts than a manager can hold sockets)')
    .requiredOption('--manager <addr>', 'the manager\'s node endpoint: unix:///PATH or ws://127.0.0.1:PORT')
    .requiredOption('--listen <addr>', 'where engines join the relay: unix:///PATH or ws://127.0.0.1:PORT')
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info'))
    .action(async (o: { manager: string; listen: string; logLevel: string }) => {
      const { startRelay } = await import('../../cluster/index.js');
      const { nodeDialUrl } = await import('../../lib/node-protocol.js');
      // the same addresses an engine may join: the join tokens must not cross a network in clear
      for (const [flag, v] of [['--manager', o.manager], ['--listen', o.listen]] as const) {
        let ok = !v.startsWith('wss://'); // a relay speaks no TLS yet
        try {
          nodeDialUrl(v);
        } catch {
          ok = false;
        }
        if (!ok) throw invalid(`${flag} ${v}: use unix:///PATH or ws://127.0.0.1:PORT`);
      }
      const r = await startRelay({ manager: o.manager, listen: o.listen }, createLogger('sampan-relay', o.logLevel));
      await r.done;
      process.exit(0);
    });
  cluster
    .command('proxy')
    .description('run a SwarmProxy in the foreground: several clusters behind one mutual-TLS endpoint; the client\'s certificate picks the cluster (its CN or an OU: --map, else a cluster of that name), and requests pass to that cluster\'s leader, followed through etcd')
    .requiredOption('--listen <addr>', 'tcp://HOST[:PORT] (mutual TLS only; port 2376 when left out)')
    .requiredOption('--tlscacert <file>', 'CA that clients\' certificates must chain to')
    .requiredOption('--tlscert <file>', 'the proxy\'s certificate (the listening address in its subject alternative names)')
    .requiredOption('--tlskey <file>', 'its key')
    .requiredOption('--cluster <name=urls>', 'a cluster (its --name) and its etcd endpoints, NAME=http://HOST:PORT[,…]; repeatable', collect)
    .option('--map <key=name>', 'a certificate whose CN or OU is KEY reaches cluster NAME; repeatable', collect)
    .option('--leader-tlscacert <file>', 'leaders whose API is tcp://: CA their certificates chain to (default --tlscacert)')
    .option('--leader-tlscert <file>', 'leaders whose API is tcp://: certificate the proxy presents to them (default --tlscert)')
    .option('--leader-tlskey <file>', 'leaders whose API is tcp://: its key (default --tlskey)')
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info'))
    .action(async (o: Record<string, string | string[] | undefined>) => {
      const { startProxy, parseProxyFlags } = await import('../../cluster/index.js');
      const s = (k: string) => o[k] as string | undefined;
      const p = await startProxy({
        listen: s('listen')!, tls: { ca: s('tlscacert')!, cert: s('tlscert')!, key: s('tlskey')! }, ...parseProxyFlags(o.cluster as string[], (o.map as string[] | undefined) ?? []),
        leaderTls: { ca: s('leaderTlscacert'), cert: s('leaderTlscert'), key: s('leaderTlskey') }, logLevel: s('logLevel'),
      });
      await p.done;
      process.exit(0);
    });
  cluster
    .command('switch')
    .description('hand the cluster over from its leader manager to a standby (graceful: requests in flight finish, none fail); prints the new leader')
    .action(async (_o: unknown, cmd: Command) => {
      const { clientFor } = await import('../client.js');
      const r = await clientFor(cmd).json<{ from: string; to: string | null }>('POST', '/sampan/v1/switch');
      process.stdout.write(r.to && r.to !== r.from ? `${r.from} handed over to ${r.to}\n` : `${r.from} leads on: no standby took over\n`);
    });
  cluster
    .command('token')
    .description('print a new join token (only its hash is kept in etcd: an existing token cannot be shown again, --rotate replaces it); with --ui, a browser token for the dashboard')
    .requiredOption('--etcd <urls>', 'etcd endpoints, comma-separated or repeated', list)
    .option('--name <name>', 'the cluster\'s name', 'default')
    .option('--rotate', 'replace the current token: engines joined with the old one are refused when they next connect')
    .option('--ui', 'a browser token for the dashboard (--ui-listen): prints the token, or the login link with --ui-url')
    .addOption(new Option('--role <role>', 'with --ui: read (sees everything, changes nothing) or admin').choices(['read', 'admin']).default('read'))
    .option('--ui-url <url>', 'with --ui: the dashboard\'s address (http://127.0.0.1:PORT/ui/): prints URL#token=TOKEN, a link that logs a browser in')
    .option('--revoke <id>', 'with --ui: revoke the browser token of this id (refused within 5 s)')
    .option('--ls', 'with --ui: list the browser tokens (ids, roles, dates; never the tokens)')
    .addOption(new Option('--format <f>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (o: { etcd: string[]; name: string; rotate?: boolean; ui?: boolean; role: 'read' | 'admin'; uiUrl?: string; revoke?: string; ls?: boolean; format: string }) => {
      const { joinToken, uiTokens, issueUiToken, revokeUiToken, listUiTokens } = await import('../../cluster/index.js');
      const json = o.format === 'json';
      if (!o.ui) {
        if (o.revoke || o.ls || o.uiUrl) throw invalid('--revoke, --ls and --ui-url are for browser tokens: add --ui');
        const t = await joinToken(o.etcd, o.name, !!o.rotate);
        if (!t) throw invalid('the cluster has a join token already, and only its hash is stored: use --rotate to make a new one');
        process.stdout.write(json ? `${JSON.stringify({ token: t })}\n` : `${t}\n`);
        return;
      }
      if (o.ls) {
        const all = await uiTokens(o.etcd, o.name, listUiTokens);
        if (json) process.stdout.write(`${JSON.stringify(all)}\n`);
        else process.stdout.write(['ID            ROLE   CREATED', ...all.map((t) => `${t.id.padEnd(14)}${t.role.padEnd(7)}${t.createdAt}`)].join('\n') + '\n');
        return;
      }
      if (o.revoke) {
        const id = o.revoke;
        if (!(await uiTokens(o.etcd, o.name, (s) => revokeUiToken(s, id)))) throw notFound(`No such browser token: ${id}`);
        process.stdout.write(json ? `${JSON.stringify({ revoked: id })}\n` : `revoked ${id}\n`);
        return;
      }
      const t = await uiTokens(o.etcd, o.name, (s) => issueUiToken(s, o.role));
      // the token travels in the fragment: a browser never sends it to the server in the URL
      const link = o.uiUrl ? `${o.uiUrl}#token=${t.token}` : undefined;
      process.stdout.write(json ? `${JSON.stringify({ id: t.id, role: o.role, token: t.token, ...(link && { link }) })}\n` : `${link ?? t.token}\n`);
    });
  cluster
    .command('testbed')
    .description('start etcd, M managers and N emulated hosts (network namespaces, each with its own engine joined to the managers) on this machine; print "ready" once all joined, write DIR/testbed.json, serve the cluster at DIR/cluster.sock; SIGTERM tears everything down')
    .requiredOption('--hosts <n>', 'emulated hosts (1 to 250)', count('--hosts'))
    .option('--managers <m>', 'cluster managers, one leader and standbys (0: etcd and hosts only)', count('--managers'), 2)
    .addOption(new Option('--etcd-members <n>', 'etcd members').choices(['1', '3']).default('1'))
    .requiredOption('--dir <dir>', 'where the testbed keeps its hosts\' roots, etcd\'s data, logs and testbed.json')
    .option('--clusters <c>', 'clusters side by side on the one etcd (c1…cC), --hosts each (the hosts go round), with a SwarmProxy in front (testbed.json\'s "proxy": its address and a client certificate per cluster)', count('--clusters'), 1)
    .option('--registry', 'also a Sampan registry on the hosts\' gateway (plain HTTP, no auth: this machine and the hosts push and pull; testbed.json\'s "registry".addr), a P2P scheduler, and a P2P peer per host that its engine pulls the registry\'s images through (testbed.json\'s "p2p")')
    .option('--tls', 'mutual TLS over TCP: a CA and certificates in DIR/tls/, the engines\' API on tcp://HOST_IP:2376, the managers\' API and node endpoint on the hosts\' gateway (tcp://, wss://)')
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS))
    .action(async (o: TestbedOpts) => {
      const { Testbed, managerComponents, registryComponent } = await import('../../cluster/index.js');
      const log = createLogger('sampan-testbed', o.logLevel);
      const dir = path.resolve(o.dir);
      if (o.clusters < 1 || (o.clusters > 1 && (o.tls || !o.managers))) throw invalid(`--clusters ${o.clusters}: use 1, or more with managers and without --tls`);
      // the registry comes before the managers: a manager that is ready can pull from it at once, and preheat at its scheduler
      const registry = o.registry ? await registryComponent(dir) : undefined;
      const managers = await managerComponents(dir, o.managers, !!o.tls, o.clusters, registry?.managerArgs);
      const components = [...(registry ? [registry.component] : []), ...managers.components];
      const engineArgs = (host: string, gw: string) => [...(registry?.engineArgs(host, gw) ?? []), ...managers.engineArgs(host, gw)];
      const tb = new Testbed({ dir, hosts: o.hosts * o.clusters, etcdMembers: Number(o.etcdMembers) as 1 | 3, log, components, engineArgs, tls: !!o.tls });
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
      const at = d.proxy ? `${d.proxy.host} through the proxy (DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=${path.join(tb.dir, 'proxy', 'clients', 'NAME')})`
        : d.tls ? `${d.managers[0]?.host} (DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=${d.tls.certPath})` : path.join(tb.dir, 'cluster.sock');
      process.stdout.write(`ready: ${d.hosts.length} hosts, ${d.managers.length} managers on ${d.network.bridge} (${d.network.subnet}), etcd ${d.etcd.endpoints.join(',')}, ${path.join(tb.dir, 'testbed.json')}${d.managers.length ? `, cluster at ${at}` : ''}${d.registry ? `, registry ${d.registry.addr} (P2P scheduler ${d.p2p?.scheduler})` : ''}\n`);
      // the testbed runs until a signal: keep the event loop alive meanwhile
      setInterval(() => undefined, 1 << 30);
    });
}
