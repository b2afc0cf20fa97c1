/**
 * The cluster manager daemon: state from etcd, engines joining on the node endpoint, the Docker API over all of
 * them (the same DockerApiServer as the engine), and Sampan's own routes under /sampan/v1/.
 */
import { promises as fs } from 'node:fs';
import { z } from 'zod';
import { DockerApiServer } from '../docker-api/index.js';
import { invalid, notFound } from '../lib/errors.js';
import { envValues, givenFlags, readConfigFile, validated } from '../lib/layered-config.js';
import { gracefulStop } from '../lib/lifecycle.js';
import { createLogger, type Logger } from '../lib/log.js';
import { NODE_ENDPOINT } from '../lib/node-protocol.js';
import type { TlsPaths } from '../lib/tls.js';
import { VERSION } from '../lib/version.js';
import { Cluster, clusterBackends } from './backend/index.js';
import { runBatch, validateBatch } from './batch.js';
import { ExternalScheduler } from './external.js';
import { HighAvailability } from './ha.js';
import { ClusterMetrics } from './metrics.js';
import { NetworkSync } from './network/engines.js';
import { checkNetworkConfig, ClusterNetworking } from './network/networks.js';
import { NodeRegistry, validateNodeUpdate } from './nodes.js';
import { registryRoute, ServiceRegistry } from './registry.js';
import { PREPULL_DEFAULTS, PrePuller } from './prepull.js';
import { STRATEGIES } from './scheduler.js';
import { ClusterState, type NodeEntry } from './state.js';
import { configRoute, ServiceController, ServiceReleaseOps, SwarmApi, swarmInfo } from './services/index.js';
import { EtcdReleaseStore, ReleaseController, releaseRoutes } from './release/index.js';
import { ClusterStore, newToken, type Availability, type NodeRecord } from './store.js';
import { startUiServer, uiRoutes } from './ui.js';
import { ReleaseTopic } from './ui-releases.js';
import { P2pTraffic } from './p2p-traffic.js';
import { ImageRegistries } from './image-registries.js';
import { parseUiListen } from '../web/index.js';
import type { UiServer } from '../web/index.js';

export const ManagerConfigSchema = z.strictObject({
  etcd: z.array(z.string().url()).min(1),
  /** The Docker API: unix:///PATH, or tcp://HOST:PORT with mutual TLS (as the engine's --host). */
  listen: z.string().regex(/^(unix:\/\/\/.+|tcp:\/\/.+)$/, 'unix:///PATH or tcp://HOST:PORT (mutual TLS)').default('unix:///run/sampan/cluster.sock'),
  /** Where engines join: unix:///PATH, ws://127.0.0.1:PORT, or wss://HOST:PORT with mutual TLS. */
  nodeListen: z.string().regex(NODE_ENDPOINT, 'unix:///PATH, ws://127.0.0.1:PORT, or wss://HOST:PORT (mutual TLS) off loopback').default('unix:///run/sampan/cluster-node.sock'),
  /** The manager's mutual TLS (tcp:// and wss://): the CA clients and engines must chain to, its certificate and key. */
  tlscacert: z.string().optional(),
  tlscert: z.string().optional(),
  tlskey: z.string().optional(),
  /** Towards engines whose API is tcp://: the CA their certificates chain to, and the certificate the manager presents. Default: its own. */
  engineTlscacert: z.string().optional(),
  engineTlscert: z.string().optional(),
  engineTlskey: z.string().optional(),
  /** The cluster's name: its keys in etcd are /sampan/cluster/NAME/. */
  name: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/).default('default'),
  /** Sets the join token (its hash goes to etcd); without it the one in etcd stands, or one is made. */
  joinToken: z.string().min(16).optional(),
  heartbeatMs: z.number().int().min(100).max(60_000).default(5000),
  strategy: z.enum(STRATEGIES as ['spread', 'binpack', 'random']).default('spread'),
  /** An external scheduler: it places what passed the filters (docs/cluster.md, "External scheduler"). */
  schedulerUrl: z.string().url().regex(/^https?:\/\//, 'an http:// or https:// URL').optional(),
  schedulerTimeoutMs: z.number().int().min(100).max(600_000).default(5000),
  /** Cluster networks: the pool their subnets come from, each network's size and its blocks' (prefix lengths), and the routing of new networks. */
  pool: z.string().regex(/^\d+\.\d+\.\d+\.\d+\/\d+$/, 'an IPv4 CIDR, e.g. 10.192.0.0/12').default('10.192.0.0/12'),
  networkSize: z.number().int().min(1).max(30).default(16),
  blockSize: z.number().int().min(1).max(30).default(24),
  routing: z.enum(['host-gw', 'vxlan']).default('host-gw'),
  /** The browsers' listener (the dashboard at /ui/, the API behind bearer tokens): HOST:PORT, loopback unless TLS. */
  uiListen: z.string().optional(),
  /** The P2P scheduler a release's image is preheated at, and whose traffic the dashboard plots (GET /sampan/v1/p2p/traffic). */
  p2pScheduler: z.string().url().regex(/^https?:\/\//, 'an http:// or https:// URL').optional(),
  /** Image registries whose caches the dashboard shows (GET /sampan/v1/registries). */
  registryUrls: z.array(z.string().url().regex(/^https?:\/\//, 'an http:// or https:// URL')).default([]),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  /** The election lease's TTL in seconds: how long a leader that died (or paused) leads on (docs/cluster.md). */
  leaseTtl: z.number().int().min(1).max(60).default(2),
  /** The version the manager stands for election with (a standby of a higher one takes over): its own by default. */
  version: z.string().regex(/^\d+(\.\d+)*(-.*)?$/, 'a dotted version, such as 1.2.0').default(VERSION),
  /** Pre-pulls (a release's next hosts pulling ahead): at once per host, and per registry over all hosts. */
  prepullPerHost: z.number().int().min(1).max(64).default(PREPULL_DEFAULTS.perHost),
  prepullPerRegistry: z.number().int().min(1).max(10_000).default(PREPULL_DEFAULTS.perRegistry),
});

export type ManagerConfig = z.infer<typeof ManagerConfigSchema>;

/** Flags > env (SAMPAN_CLUSTER_ + UPPER_SNAKE key) > config file > defaults. */
export async function loadManagerConfig(flags: Partial<ManagerConfig> & { config?: string }, env: NodeJS.ProcessEnv = process.env): Promise<ManagerConfig> {
  const fromFile = flags.config ? await readConfigFile(flags.config, 'config file') : {};
  const c = validated(ManagerConfigSchema, { ...fromFile, ...envValues(ManagerConfigSchema.shape, 'SAMPAN_CLUSTER_', env), ...givenFlags(flags) }, 'manager config');
  for (const a of [c.listen, c.nodeListen]) {
    if ((a.startsWith('tcp://') || a.startsWith('wss://')) && !ownTls(c)) throw invalid(`refusing to listen on ${a} without mutual TLS: pass --tlscacert, --tlscert and --tlskey`);
  }
  checkNetworkConfig(c);
  if (c.uiListen) parseUiListen(c.uiListen);
  c.engineTlscacert ??= c.tlscacert;
  c.engineTlscert ??= c.tlscert;
  c.engineTlskey ??= c.tlskey;
  return c;
}

const ownTls = (c: ManagerConfig): TlsPaths | undefined => (c.tlscacert && c.tlscert && c.tlskey ? { ca: c.tlscacert, cert: c.tlscert, key: c.tlskey } : undefined);

/** A node as `/sampan/v1/nodes` shows it: its record (edits kept internal), containers and images counted. */
export type NodeView = Omit<NodeRecord, 'labelEdits'> & { availability: Availability; containers: number; images: number; degraded?: Record<string, string> };

function nodeView(n: NodeEntry, degraded?: Record<string, string>): NodeView {
  const { labelEdits: _, ...rec } = n.rec;
  return { ...rec, availability: rec.availability ?? 'active', containers: n.containers.size, images: n.images, ...(degraded && { degraded }) };
}

/** How often the manager checks that etcd answers, with nothing else to tell it (no request, no transition). */
const ETCD_PROBE_MS = 1000;

/** The store's probe every `ms`, never two at once (a probe of an etcd that hangs takes up to its timeout). */
function probeEvery(store: ClusterStore, ms: number): NodeJS.Timeout {
  let probing = false;
  return setInterval(() => {
    if (probing) return;
    probing = true;
    void store.probe().finally(() => (probing = false));
  }, ms);
}

export interface RunningManager {
  log: Logger;
  /** Pre-pulls and preheats (a release's). */
  prePuller: PrePuller;
  done: Promise<void>;
  shutdown(): Promise<void>;
}

export async function startManager(cfg: ManagerConfig, opts: { handleSignals?: boolean } = {}): Promise<RunningManager> {
  const log = createLogger('sampan-cluster', cfg.logLevel);
  const store = ClusterStore.connect(cfg.etcd, cfg.name);
  const state = new ClusterState();
  const nodes = new NodeRegistry(state, store, log, cfg.heartbeatMs);
  const registry = new ServiceRegistry((id) => state.entry(id));
  nodes.resolve = (network, name) => registry.resolve(network, name);
  const net = new ClusterNetworking(store, cfg);
  const sync = new NetworkSync(net, state, store, nodes, log);
  nodes.onWelcome = (n) => sync.welcome(n);
  nodes.onNetState = (n, m) => sync.netstate(n, m);
  const cluster = new Cluster(state, store, log, nodes, cfg.strategy, {
    external: cfg.schedulerUrl ? new ExternalScheduler(cfg.schedulerUrl, cfg.schedulerTimeoutMs) : undefined,
    engineTls: { ca: cfg.engineTlscacert, cert: cfg.engineTlscert, key: cfg.engineTlskey },
  }, net);
  const view = (n: NodeEntry) => nodeView(n, sync.degraded.get(n.rec.id));
  const backends = clusterBackends(cluster, cfg.name, () => ha.role);
  // services (swarm mode): the leader reconciles; the feed is the containers' changes, after the service registry's
  const services = new ServiceController(cluster, backends.containers, store, log);
  services.leading = () => ha.role === 'leader';
  state.onChange = (before, after) => {
    registry.change(before, after);
    services.containerChanged(before, after);
  };
  state.onNodeChange = () => services.nodeChanged();
  const swarm = new SwarmApi(services, { update: (ref, u) => nodes.update(ref, u), remove: (ref, force) => sync.removeNode(ref, force) }, cfg.name);
  backends.swarm = swarm;
  const info = backends.system.info.bind(backends.system);
  const ping = backends.system.pingHeaders?.bind(backends.system);
  // a swarm manager to the docker CLI: `_ping`'s Swarm header and info's Swarm (its service commands check them)
  backends.system.info = async () => ({ ...(await info()), Swarm: swarmInfo(cfg.name, state, ha.role === 'leader') });
  backends.system.pingHeaders = () => ({ ...ping?.(), Swarm: 'active/manager' });
  const api = new DockerApiServer(backends, log, 'sampan_cluster_');
  const ha = new HighAvailability({
    etcd: cfg.etcd, clusterName: cfg.name, api: cfg.listen, listens: [cfg.listen].filter((l) => l.startsWith('unix://')), version: cfg.version, leaseTtl: cfg.leaseTtl, ownTls: ownTls(cfg),
  }, store, state, nodes, cluster, api, log);
  const metrics = new ClusterMetrics(state, store.health);
  api.addHeaders((): Record<string, string> => {
    const stale = store.health.stale;
    return stale ? { 'X-Sampan-Stale': stale } : {};
  });
  // the manager that served the request (a standby forwards to the leader, whose name this is): how a client, or
  // bench/cluster-ha, tells the old leader's last answer from the new one's first across a switch
  api.addHeaders(() => ({ 'X-Sampan-Manager': ha.status().name }));
  store.onWrite = (s) => metrics.etcdTxn.observe(s);
  cluster.onSchedule = (s, placed) => {
    metrics.scheduling.observe(s);
    metrics.placements.inc(placed);
  };
  api.addMetrics((registry) => metrics.register(registry));
  const prePuller = new PrePuller(state, (n) => cluster.client(n), log, { perHost: cfg.prepullPerHost, perRegistry: cfg.prepullPerRegistry, p2pScheduler: cfg.p2pScheduler });
  // releases drive the services' slot replacement; their pre-pulls go through the capped pre-puller
  // with a P2P scheduler, a release first has the image preheated into the P2P network (beside it, not blocking it)
  const preheat = cfg.p2pScheduler ? async (image: string) => {
    const job = await prePuller.preheat(image, { wait: true });
    if (job.state === 'failed') throw new Error(`preheat job ${job.id} failed${job.error ? `: ${job.error}` : ''}`);
  } : undefined;
  const releases = new ReleaseController(new ServiceReleaseOps(services, (n, image) => prePuller.prePull(n, image), preheat), new EtcdReleaseStore(store), log);
  services.smartRelease = (req) => releases.start(req);
  services.forgetReleases = (name) => releases.forget(name);
  releaseRoutes((method, pattern, h) => api.route(method, pattern, h), releases);
  api.addMetrics((registry) => prePuller.register(registry));
  const p2p = cfg.p2pScheduler ? new P2pTraffic(cfg.p2pScheduler, log) : undefined;
  // the releases page's records on the one stream (the CLI follows one release on its watch route)
  const releaseTopic = new ReleaseTopic(releases, log);
  const uiDeps = { api, state, store, log, view, degraded: (id: string) => !!sync.degraded.get(id), p2p, registries: new ImageRegistries(cfg.registryUrls), releases: releaseTopic };
  const feed = uiRoutes(uiDeps);
  let ui: UiServer | undefined;
  try {
    if (cfg.joinToken) await store.setToken(cfg.joinToken);
    else if (!(await store.hasToken())) await store.setToken(newToken()); // nobody knows it: `sampan cluster token --rotate` prints a new one
    // the nodes as etcd knows them (each has 3 heartbeats to come back before it counts as down), and which node
    // owns each container the managers created (a copy reported by another node is an orphan); then followed
    await ha.follow();
    // the cluster networks and the addresses in use as etcd has them, read again by a manager that starts to lead
    // (a standby's may be behind), which then tells every engine
    await net.load(await store.placements());
    ha.onLead = async () => {
      await net.load(await store.placements());
      await net.ensureDefault();
      for (const n of state.nodes.values()) if (nodes.connected(n)) sync.welcome(n);
      await services.lead();
      await releases.resumeAll();
      void releaseTopic.seed();
    };
    // a config as JSON, or (watch=1) its versions as server-sent events, so a container can follow it
    api.route('GET', '/sampan/v1/configs/{name}', (ctx) => configRoute(ctx, services));
    api.route('GET', '/sampan/v1/manager', (ctx) => ctx.send(200, ha.status()));
    // on the leader (a standby forwards it): hands over to the next in line, then stands again
    api.route('POST', '/sampan/v1/switch', async (ctx) => {
      const from = ha.status().name;
      const to = await ha.handover(true, 1);
      ctx.send(200, { from, to: to?.name ?? ha.status().leader ?? null });
    });
    api.route('GET', '/sampan/v1/nodes', (ctx) => ctx.send(200, [...state.nodes.values()].map(view)));
    api.route('GET', '/sampan/v1/nodes/{id}', (ctx) => ctx.send(200, view(state.getNode(ctx.param('id')))));
    api.route('PATCH', '/sampan/v1/nodes/{id}', async (ctx) => {
      store.health.requireUp();
      ctx.send(200, view(await nodes.update(ctx.param('id'), validateNodeUpdate(await ctx.json()))));
    });
    api.route('DELETE', '/sampan/v1/nodes/{id}', async (ctx) => {
      store.health.requireUp();
      await sync.removeNode(ctx.param('id'), ctx.bool('force'));
      ctx.send(204);
    });
    api.route('GET', '/sampan/v1/registry', registryRoute(registry));
    // a pre-pull answers once the node has the image (the status, or the pull's error); ?wait=0 answers at once
    api.route('POST', '/sampan/v1/prepull', async (ctx) => {
      const { node, image } = prePullBody(await ctx.json());
      const done = prePuller.prePull(node, image);
      if (ctx.query.get('wait') !== '0') await done;
      else done.catch(() => undefined); // its failure is in the status
      ctx.send(200, prePuller.status(node, image));
    });
    api.route('GET', '/sampan/v1/prepull', (ctx) => {
      const node = ctx.query.get('node');
      const image = ctx.query.get('image');
      if (!node || !image) throw invalid('node= and image= are required');
      ctx.send(200, prePuller.status(node, image));
    });
    api.route('POST', '/sampan/v1/preheat', async (ctx) => {
      const b = (await ctx.json()) as { image?: unknown; zone?: unknown; wait?: unknown };
      if (typeof b?.image !== 'string' || (b.zone !== undefined && typeof b.zone !== 'string')) throw invalid('expected {"image": "REGISTRY/REPO:TAG", "zone"?: "Z", "wait"?: bool}');
      ctx.send(200, await prePuller.preheat(b.image, { ...(b.zone !== undefined && { zone: b.zone as string }), wait: b.wait !== false }));
    });
    api.route('GET', '/sampan/v1/batches/{id}', async (ctx) => {
      const b = await store.batch(ctx.param('id'));
      if (!b) throw notFound(`No such batch: ${ctx.param('id')}`);
      ctx.send(200, b);
    });
    // JSON lines: one per replica as it lands, then the batch
    api.route('POST', '/sampan/v1/batches', async (ctx) => {
      const req = validateBatch(await ctx.json());
      store.health.requireUp();
      let res: ReturnType<typeof ctx.stream> | undefined;
      const b = await runBatch(cluster, backends.containers, req, (replica, done) => {
        if (!res) res = ctx.stream('application/x-ndjson');
        // the lines of one tick go out in one write: thousands of replicas land a second
        if (!res.writableCorked) {
          res.cork();
          setImmediate((r: typeof res) => r?.uncork(), res);
        }
        res.write(JSON.stringify({ replica, done, total: req.replicas }) + '\n');
      });
      metrics.batchReplicas.inc({ result: 'running' }, b.running);
      metrics.batchReplicas.inc({ result: 'failed' }, b.failed);
      if (res) res.end(JSON.stringify({ batch: b }) + '\n');
      else ctx.send(200, { batch: b });
    });
    await nodes.listen(cfg.nodeListen, ownTls(cfg));
    await api.listen([cfg.listen], ownTls(cfg));
    if (cfg.uiListen) ui = await startUiServer(cfg.uiListen, uiDeps, cfg.tlscert && cfg.tlskey ? { cert: cfg.tlscert, key: cfg.tlskey } : undefined);
    await ha.campaign();
    p2p?.start();
  } catch (err) {
    await ui?.close().catch(() => undefined);
    await ha.stop().catch(() => undefined);
    await nodes.close().catch(() => undefined);
    store.close();
    throw err;
  }
  // from here on, a lost etcd is a state the manager serves in, not a failed start
  store.health.onChange = (up, err) => {
    if (!up) {
      log.error({ err }, 'etcd unreachable: reads are served from memory (marked stale), changes are refused');
      return;
    }
    log.info('etcd reachable again: changes are accepted');
    void nodes.recordPending();
  };
  const prober = probeEvery(store, ETCD_PROBE_MS);
  log.info({ name: cfg.name, role: ha.role, version: cfg.version, listen: cfg.listen, nodeListen: cfg.nodeListen, ...(ui && { ui: `${ui.url}/ui/` }), etcd: cfg.etcd, nodes: state.nodes.size, schedulerUrl: cfg.schedulerUrl }, 'cluster manager started');
  const { done, shutdown } = gracefulStop(async () => {
    log.info('shutting down');
    services.stop();
    await releases.stop();
    await ha.stop();
    feed.close();
    releaseTopic.close();
    p2p?.stop();
    await ui?.close();
    await api.close();
    await nodes.close();
    clearInterval(prober);
    store.close();
    for (const a of [cfg.listen, cfg.nodeListen]) if (a.startsWith('unix://')) await fs.rm(a.slice(7), { force: true });
    log.info('cluster manager stopped');
    log.flush();
  }, opts);
  return { log, prePuller, done, shutdown };
}

function prePullBody(b: unknown): { node: string; image: string } {
  const o = b as { node?: unknown; image?: unknown } | null;
  if (!o || typeof o.node !== 'string' || typeof o.image !== 'string' || !o.node || !o.image) throw invalid('expected {"node": "NAME or ID", "image": "REF"}');
  return { node: o.node, image: o.image };
}

/** `sampan cluster token`: a new token when none exists or on rotate (only its hash is kept, so it prints once). */
export async function joinToken(etcd: string[], name: string, rotate: boolean): Promise<string | undefined> {
  const store = ClusterStore.connect(etcd, name);
  try {
    if (!rotate && (await store.hasToken())) return undefined;
    const t = newToken();
    await store.setToken(t);
    return t;
  } finally {
    store.close();
  }
}
