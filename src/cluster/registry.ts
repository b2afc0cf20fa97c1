/**
 * The service registry: which containers serve which names, and where. A service is a container's name, its
 * `com.sampan.service` label and each of its network aliases (case-insensitive, as DNS names); its instances are the
 * containers that are running and healthy (or have no health check) on nodes that are up. Kept from the cluster
 * state's changes (each costs O(that container)), never by asking the engines; watchers get an `add` or `remove`
 * per change.
 */
import type { ServerResponse } from 'node:http';
import type { Ctx } from '../docker-api/index.js';
import type { ReportedContainer } from '../lib/node-protocol.js';
import type { ContainerEntry } from './state.js';

export const SERVICE_LABEL = 'com.sampan.service';

export interface InstancePort {
  port: number;
  protocol: string;
  /** Published on the node: the host port and address. */
  hostPort?: number;
  hostIp?: string;
}

/** One instance (a ready container) as the registry lists it. */
export interface Instance {
  id: string;
  name: string;
  node: string;
  /** The services it serves, in lower case. */
  services: string[];
  /** By network name: its addresses there (IPv4, then IPv6) and its aliases there. */
  networks: Record<string, { ips: string[]; aliases: string[] }>;
  ports: InstancePort[];
  /** `healthy`, or `none` for a container without a health check. */
  health: 'healthy' | 'none';
}

export interface Service {
  name: string;
  instances: Instance[];
}

export interface RegistryFilter {
  service?: string;
  network?: string;
}

const nameOf = (s: ReportedContainer) => (s.Names[0] ?? '').replace(/^\//, '');

/**
 * Whether a container is an instance: running, healthy if it has a health check, and on a node that is up (what a
 * down node reported last may no longer be so, and it is out of reach).
 */
export function ready(e: ContainerEntry): boolean {
  const health = e.summary.Facts.Health;
  return e.node.rec.state === 'up' && e.summary.Facts.Status === 'running' && (!health || health === 'none' || health === 'healthy');
}

/** The networks a container has an address on: its addresses and aliases there. */
function networksOf(s: ReportedContainer): Instance['networks'] {
  const out: Instance['networks'] = {};
  for (const [net, ep] of Object.entries(s.NetworkSettings?.Networks ?? {})) {
    const ips = [ep.IPAddress, ep.GlobalIPv6Address].filter(Boolean);
    if (ips.length) out[net] = { ips, aliases: ep.Aliases ?? [] };
  }
  return out;
}

/** Names a container answers to on every network it is on (an alias only where it was given). */
const globalNames = (s: ReportedContainer) => [nameOf(s), s.Labels?.[SERVICE_LABEL] ?? ''].filter(Boolean).map((x) => x.toLowerCase());

function servicesOf(s: ReportedContainer, networks = networksOf(s)): string[] {
  return [...new Set([...globalNames(s), ...Object.values(networks).flatMap((n) => n.aliases.map((a) => a.toLowerCase()))])].sort();
}

/** A container as the registry shows it (made when asked: the registry keeps ids only). */
export function instanceOf(e: ContainerEntry): Instance {
  const s = e.summary;
  const networks = networksOf(s);
  return {
    id: s.Id, name: nameOf(s), node: e.node.rec.name, services: servicesOf(s, networks), networks,
    ports: (s.Ports ?? []).map((p) => ({ port: p.PrivatePort, protocol: p.Type, ...(p.PublicPort ? { hostPort: p.PublicPort, hostIp: p.IP ?? '' } : {}) })),
    health: s.Facts.Health === 'healthy' ? 'healthy' : 'none',
  };
}

const matches = (i: Instance, f: RegistryFilter) => (!f.service || i.services.includes(f.service.toLowerCase())) && (!f.network || !!i.networks[f.network]);

export type RegistryEvent = 'add' | 'remove';
/** A watcher: told each change of an instance it matches (`add` also when one it had changed), with its JSON. */
type Sink = (event: RegistryEvent, instance: Instance, json: string) => void;

export class ServiceRegistry {
  /**
   * The instances' ids, and by service name (one id alone, as most services have, is kept without a Set: memory
   * per container counts at a million of them); their views are made from the state's entries when asked.
   */
  private readonly ready = new Set<string>();
  private readonly byService = new Map<string, string | Set<string>>();
  private readonly watchers = new Map<Sink, RegistryFilter>();

  constructor(private readonly entry: (id: string) => ContainerEntry | undefined) {}

  /** The cluster state's change hook. */
  change(before: ContainerEntry | undefined, after: ContainerEntry | undefined): void {
    const id = (after ?? before)!.summary.Id;
    const was = this.ready.has(id) ? before : undefined;
    const now = after && ready(after) ? after : undefined;
    if (!was && !now) return;
    for (const s of was ? servicesOf(was.summary) : []) {
      const ids = this.byService.get(s);
      if (ids === id || (typeof ids === 'object' && ids.delete(id) && !ids.size)) this.byService.delete(s);
    }
    for (const s of now ? servicesOf(now.summary) : []) {
      const ids = this.byService.get(s);
      if (ids === undefined || ids === id) this.byService.set(s, id);
      else if (typeof ids === 'string') this.byService.set(s, new Set([ids, id]));
      else ids.add(id);
    }
    if (now) this.ready.add(id);
    else this.ready.delete(id);
    if (!this.watchers.size) return;
    const [oldI, newI] = [was && instanceOf(was), now && instanceOf(now)];
    const [oldJson, newJson] = [oldI && JSON.stringify(oldI), newI && JSON.stringify(newI)];
    if (oldJson === newJson) return; // a change that leaves the instance as it was tells nobody
    for (const [sink, f] of this.watchers) {
      if (newI && matches(newI, f)) sink('add', newI, newJson!);
      else if (oldI && matches(oldI, f)) sink('remove', oldI, oldJson!);
    }
  }

  private instances(service: string): ContainerEntry[] {
    const ids = this.byService.get(service) ?? [];
    return (typeof ids === 'string' ? [ids] : [...ids]).map((id) => this.entry(id)!);
  }

  /** The services and their instances, by name; with `service`, that one only (O(its instances)). */
  list(f: RegistryFilter = {}): Service[] {
    const names = f.service ? [f.service.toLowerCase()] : [...this.byService.keys()].sort();
    const out: Service[] = [];
    for (const name of names) {
      const instances = this.instances(name).map(instanceOf).filter((i) => matches(i, f));
      if (instances.length) out.push({ name, instances: instances.sort((a, b) => a.name.localeCompare(b.name)) });
    }
    return out;
  }

  /** A name on a network (also `NAME.NETWORK`, as Docker's embedded DNS): the addresses there of the service's instances. */
  resolve(network: string, name: string): string[] {
    const lower = name.toLowerCase().replace(/\.$/, '');
    const suffix = `.${network.toLowerCase()}`;
    for (const n of lower.endsWith(suffix) ? [lower, lower.slice(0, -suffix.length)] : [lower]) {
      const ips: string[] = [];
      for (const e of this.instances(n)) {
        const net = networksOf(e.summary)[network];
        if (net && (globalNames(e.summary).includes(n) || net.aliases.some((a) => a.toLowerCase() === n))) ips.push(...net.ips);
      }
      if (ips.length) return ips;
    }
    return [];
  }

  /** Tells `sink` of each change that matches `f` until the returned function is called. */
  watch(f: RegistryFilter, sink: Sink): () => void {
    this.watchers.set(sink, f);
    return () => this.watchers.delete(sink);
  }

  get watching(): number {
    return this.watchers.size;
  }
}

/** What a watcher may have queued and unsent before it is dropped: a client that does not read must not grow memory. */
const WATCH_BUFFER_LIMIT = 1 << 20;
const KEEPALIVE_MS = 15_000;

/**
 * Server-sent events on a response: `snapshot` (the list), then `add` and `remove` (an instance each). A client
 * that leaves more than `limit` bytes unread is cut off (an EventSource reconnects and gets a fresh snapshot).
 */
export function serveWatch(reg: ServiceRegistry, f: RegistryFilter, res: ServerResponse, closed: Promise<void>, limit = WATCH_BUFFER_LIMIT): void {
  const write = (event: string, json: string) => {
    if (res.destroyed) return;
    if (res.writableLength > limit) {
      stop();
      res.destroy();
      return;
    }
    res.write(`event: ${event}\ndata: ${json}\n\n`);
  };
  const unwatch = reg.watch(f, (event, _i, json) => write(event, json));
  // a comment now and then: proxies keep the stream open, and a client gone silently is found by the write
  const ping = setInterval(() => !res.destroyed && res.write(':\n\n'), KEEPALIVE_MS);
  const stop = () => {
    unwatch();
    clearInterval(ping);
  };
  write('snapshot', JSON.stringify(reg.list(f)));
  void closed.then(stop);
}

/** `GET /sampan/v1/registry[?service=NAME][&network=NAME][&watch=1]`. */
export function registryRoute(reg: ServiceRegistry): (ctx: Ctx) => void {
  return (ctx) => {
    const f: RegistryFilter = { service: ctx.query.get('service') || undefined, network: ctx.query.get('network') || undefined };
    if (!ctx.bool('watch')) {
      ctx.send(200, reg.list(f));
      return;
    }
    serveWatch(reg, f, ctx.stream('text/event-stream', { 'Cache-Control': 'no-cache' }), ctx.closed());
  };
}
