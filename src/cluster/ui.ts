/**
 * The dashboard's side of the manager: the JSON routes its pages read (documented in docs/dashboard.md, and
 * served on every listener, so the CLI can use them too), its live stream fed from the manager's indexes
 * (state.ts) and its releases (ui-releases.ts), and the browsers' listener (--ui-listen) whose bearer tokens are
 * checked against etcd.
 */
import { statusText } from '../lib/container-status.js';
import { invalid } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import type { DockerApiServer } from '../docker-api/index.js';
import { LiveFeed, UiServer, type ApiHandler } from '../web/index.js';
import type { ClusterState, ContainerEntry, NodeEntry } from './state.js';
import type { ClusterStore } from './store.js';
import { UiTokenChecker, uiTokenId } from './ui-tokens.js';
import type { P2pTraffic } from './p2p-traffic.js';
import type { ImageRegistries } from './image-registries.js';
import { notFound } from '../lib/errors.js';

/** The label Docker's services put on their tasks' containers. */
const SERVICE_LABEL = 'com.docker.swarm.service.name';

export interface ClusterSummary {
  nodes: { total: number; up: number; down: number; degraded: number; drain: number };
  containers: { total: number; running: number };
  services: number;
  /** Over the nodes that are up: what they have, and what their containers reserve (--cpus, --memory). */
  capacity: { ncpu: number; memTotal: number };
  reserved: { ncpu: number; memory: number };
}

export function summary(state: ClusterState, degraded: (id: string) => boolean): ClusterSummary {
  const s: ClusterSummary = { nodes: { total: 0, up: 0, down: 0, degraded: 0, drain: 0 }, containers: { total: state.containerCount, running: 0 }, services: 0, capacity: { ncpu: 0, memTotal: 0 }, reserved: { ncpu: 0, memory: 0 } };
  for (const n of state.nodes.values()) {
    s.nodes.total++;
    if (n.rec.state === 'up') {
      s.nodes.up++;
      s.capacity.ncpu += n.rec.capacity.ncpu;
      s.capacity.memTotal += n.rec.capacity.memTotal;
      s.reserved.ncpu += n.reserved.nanoCpus / 1e9;
      s.reserved.memory += n.reserved.memory;
    } else s.nodes.down++;
    if (degraded(n.rec.id)) s.nodes.degraded++;
    if (n.rec.availability === 'drain') s.nodes.drain++;
  }
  for (const c of state.all()) if (c.summary.State === 'running') s.containers.running++;
  const services = new Set<string>();
  for (const id of state.withLabel(SERVICE_LABEL)) {
    const v = state.entry(id)?.summary.Labels[SERVICE_LABEL];
    if (v) services.add(v);
  }
  s.services = services.size;
  return s;
}

export interface ContainerRow {
  id: string;
  name: string;
  node: string;
  image: string;
  state: string;
  status: string;
  created: number;
  labels: Record<string, string>;
}

const row = (e: ContainerEntry): ContainerRow => ({
  id: e.summary.Id,
  name: (e.summary.Names[0] ?? '').replace(/^\//, ''),
  node: e.node.rec.name,
  image: e.summary.Image,
  state: e.summary.State,
  status: e.node.rec.state === 'down' ? 'Host Down' : statusText(e.summary.Facts),
  created: e.summary.Created,
  labels: e.summary.Labels,
});

/** Containers matching every given criterion: q in the name or id (prefix), or a label's key or value; node; label k or k=v. */
export function searchContainers(state: ClusterState, o: { q?: string; node?: string; label?: string; limit: number }): { total: number; items: ContainerRow[] } {
  const q = o.q?.toLowerCase();
  const [lk, lv] = o.label ? (o.label.includes('=') ? [o.label.slice(0, o.label.indexOf('=')), o.label.slice(o.label.indexOf('=') + 1)] : [o.label, undefined]) : [];
  const candidates = lk ? [...state.withLabel(lv === undefined ? lk : `${lk}=${lv}`)].map((id) => state.entry(id)!).filter(Boolean) : state.all();
  const items: ContainerRow[] = [];
  let total = 0;
  for (const e of candidates) {
    if (o.node && e.node.rec.name !== o.node && e.node.rec.id !== o.node) continue;
    if (q) {
      const name = (e.summary.Names[0] ?? '').toLowerCase();
      const hit = name.includes(q) || e.summary.Id.startsWith(q) || e.summary.Image.toLowerCase().includes(q)
        || Object.entries(e.summary.Labels).some(([k, v]) => k.toLowerCase().includes(q) || v.toLowerCase().includes(q));
      if (!hit) continue;
    }
    total++;
    if (items.length < o.limit) items.push(row(e));
  }
  items.sort((a, b) => a.name.localeCompare(b.name));
  return { total, items };
}

export interface UiDeps {
  api: DockerApiServer;
  state: ClusterState;
  store: ClusterStore;
  log: Logger;
  view(n: NodeEntry): { id: string };
  degraded(id: string): boolean;
  /** With --p2p-scheduler: the P2P traffic it samples. */
  p2p?: P2pTraffic;
  /** With --registry-url: the registries whose caches the images page shows. */
  registries?: ImageRegistries;
  /** Each service's latest release record (ui-releases.ts): the stream's `releases` topic. */
  releases?: { read(): Iterable<{ service: string }> };
}

/** The dashboard's routes on the manager's API: /sampan/v1/summary, /containers, /ui/stream. Answers the feed (closed at stop). */
export function uiRoutes(d: UiDeps): LiveFeed {
  const feed = new LiveFeed()
    .add('summary', { kind: 'value', read: () => summary(d.state, d.degraded) })
    .add('nodes', { kind: 'keyed', read: () => [...d.state.nodes.values()].map(d.view), key: (n) => (n as { id: string }).id });
  if (d.releases) feed.add('releases', { kind: 'keyed', read: () => d.releases!.read(), key: (r) => (r as { service: string }).service });
  if (d.p2p) feed.add('p2p', { kind: 'value', read: () => d.p2p!.view() });
  d.api.route('GET', '/sampan/v1/p2p/traffic', (ctx) => {
    if (!d.p2p) throw notFound('no P2P traffic: the manager samples it from a P2P scheduler given with --p2p-scheduler URL');
    ctx.send(200, d.p2p.view());
  });
  d.api.route('GET', '/sampan/v1/registries', async (ctx) => {
    if (!d.registries?.configured) throw notFound('no registries: the manager shows those given with --registry-url URL');
    ctx.send(200, await d.registries.stats());
  });
  d.api.route('GET', '/sampan/v1/summary', (ctx) => ctx.send(200, summary(d.state, d.degraded)));
  d.api.route('GET', '/sampan/v1/containers', (ctx) => {
    const limit = ctx.int('limit', 200)!;
    if (!(limit >= 1 && limit <= 5000)) throw invalid(`limit ${limit}: use 1 to 5000`);
    ctx.send(200, searchContainers(d.state, { q: ctx.query.get('q') ?? undefined, node: ctx.query.get('node') ?? undefined, label: ctx.query.get('label') ?? undefined, limit }));
  });
  d.api.route('GET', '/sampan/v1/ui/stream', (ctx) => {
    ctx.onLongLived();
    feed.subscribe(ctx.res!);
  });
  return feed;
}

/** The browsers' listener over the API (its own dispatch: a standby passes requests to the leader). */
export async function startUiServer(listen: string, d: UiDeps, tls?: { cert: string; key: string }): Promise<UiServer> {
  const tokens = new UiTokenChecker(d.store);
  const api: ApiHandler = (req, res, upgrade) => {
    if (!d.api.intercept?.(req, res, upgrade)) void d.api.serve(req, res, upgrade);
  };
  // what a browser does is recorded as its token's (a release's "confirmed by ui:ID"), as `--ls` names it
  const ui = new UiServer({ listen, authenticate: (t) => tokens.role(t), identify: (t) => `ui:${uiTokenId(t) ?? 'unknown'}`, api, log: d.log, ...(tls && { tls }) });
  await ui.start();
  return ui;
}
