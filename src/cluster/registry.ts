/**
 * The service registry: which containers serve which names, and where. A service is a container's name, its
 * `com.sampan.service` label and each of its network aliases (case-insensitive, as DNS names); its instances are the
 * containers that are running and healthy (or have no health check) on nodes that are up. Kept from the cluster
 * state's changes (each costs O(that container)), never by asking the engines; watchers get an `add` or `remove`
 * per change.
 */
import type { ServerResponse } from 'node:http';
import type { Ctx } from '../docker-api/http.js';
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

/** One ready container as the registry lists it. */
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
 * The container as an instance, or undefined when it is not ready: not running, with a health check not (yet)
 * healthy, or on a node that is down (what it reported last may no longer be so, and it is out of reach).
 */
export function instanceOf(e: ContainerEntry): Instance | undefined {
  const s = e.summary;
  const health = s.Facts.Health;
  if (e.node.rec.state !== 'up' || s.Facts.Status !== 'running' || (health && health !== 'none' && health !== 'healthy')) return undefined;
  const networks: Instance['networks'] = {};
  for (const [net, ep] of Object.entries(s.NetworkSettings?.Networks ?? {})) {
    const ips = [ep.IPAddress, ep.GlobalIPv6Address].filter(Boolean);
    if (ips.length) networks[net] = { ips, aliases: ep.Aliases ?? [] };
  }
  const name = nameOf(s);
  const services = new Set([name, s.Labels?.[SERVICE_LABEL] ?? '', ...Object.values(networks).flatMap((n) => n.aliases)].filter(Boolean).map((x) => x.toLowerCase()));
  return {
    id: s.Id, name, node: e.node.rec.name, services: [...services].sort(), networks,
    ports: (s.Ports ?? []).map((p) => ({ port: p.PrivatePort, protocol: p.Type, ...(p.PublicPort ? { hostPort: p.PublicPort, hostIp: p.IP ?? '' } : {}) })),
    health: health === 'healthy' ? 'healthy' : 'none',
  };
}

const matches = (i: Instance, f: RegistryFilter) => (!f.service || i.services.includes(f.service.toLowerCase())) && (!f.network || !!i.networks[f.network]);

export type RegistryEvent = 'add' | 'remove';
/** A watcher: told each change of an instance it matches (`add` also when one it had changed). */
type Sink = (event: RegistryEvent, instance: Instance, json: string) => void;

export class ServiceRegistry {
  /**
   * Ready containers by id, each with its JSON (a change that leaves it the same tells nobody) and the names it
   * answers to on every network it is on (its name and label; an alias only on the network it was given on).
   */
  private readonly instances = new Map<string, { i: Instance; json: string; global: string[] }>();
  private readonly byService = new Map<string, Set<string>>();
  private readonly watchers = new Map<Sink, RegistryFilter>();

  /** The cluster state's change hook. */
  change(before: ContainerEntry | undefined, after: ContainerEntry | undefined): void {
    const id = (after ?? before)!.summary.Id;
    const old = this.instances.get(id);
    const now = after && instanceOf(after);
    const json = now && JSON.stringify(now);
    if (json === old?.json) return;
    for (const s of old?.i.services ?? []) {
      const set = this.byService.get(s)!;
      set.delete(id);
      if (!set.size) this.byService.delete(s);
    }
    if (now) {
      this.instances.set(id, { i: now, json: json!, global: [now.name, after.summary.Labels?.[SERVICE_LABEL] ?? ''].map((x) => x.toLowerCase()) });
      for (const s of now.services) {
        let set = this.byService.get(s);
        if (!set) this.byService.set(s, (set = new Set()));
        set.add(id);
      }
    } else this.instances.delete(id);
    for (const [sink, f] of this.watchers) {
      if (now && matches(now, f)) sink('add', now, json!);
      else if (old && matches(old.i, f)) sink('remove', old.i, old.json);
    }
  }

  /** The services and their instances, by name; with `service`, that one only (O(its instances)). */
  list(f: RegistryFilter = {}): Service[] {
    const names = f.service ? [f.service.toLowerCase()] : [...this.byService.keys()].sort();
    const out: Service[] = [];
    for (const name of names) {
      const instances = [...this.byService.get(name) ?? []].map((id) => this.instances.get(id)!.i).filter((i) => matches(i, f));
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
      for (const id of this.byService.get(n) ?? []) {
        const { i, global } = this.instances.get(id)!;
        const net = i.networks[network];
        if (net && (global.includes(n) || net.aliases.some((a) => a.toLowerCase() === n))) ips.push(...net.ips);
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
export const WATCH_BUFFER_LIMIT = 1 << 20;
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
