import { promises as fs } from 'node:fs';
import { errorMessage } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import type { ContainerRecord } from '../containers/model.js';
import { DnsResponder } from './dns.js';
import { DEFAULT_NETWORK, type ContainerNet, type Endpoint, type NetworkRecord } from './model.js';

/** Asks beyond this engine for a name on a network (a cluster manager); undefined when it cannot (not connected). */
export type RemoteNames = (network: string, name: string) => Promise<string[]> | undefined;

/** The driver of cluster networks' engine-side records: their names span the cluster, so the manager is asked. */
const CLUSTER_DRIVER: string = 'overlay';

/**
 * How containers find each other by name: each user network's embedded DNS responder (on its gateway address), and
 * the /etc/hosts and resolv.conf lines that go with it (hosts entries where no responder runs).
 */
export class NetworkNames {
  /** The embedded DNS responder of each user network that has had an endpoint, by network id. */
  private readonly dns = new Map<string, DnsResponder>();
  private readonly remotes = new Set<RemoteNames>();

  constructor(
    private readonly containers: () => ContainerRecord[],
    private readonly network: (id: string) => NetworkRecord | undefined,
    private readonly log: Logger,
  ) {}

  /** Where names of cluster networks that no container here has are asked (one per manager); returns its removal. */
  addRemote(r: RemoteNames): () => void {
    this.remotes.add(r);
    return () => this.remotes.delete(r);
  }

  /** The first remote that can answer (a connected manager), or nobody. */
  private remote(network: string, name: string): Promise<string[]> {
    for (const r of this.remotes) {
      const p = r(network, name);
      if (p) return p;
    }
    return Promise.resolve([]);
  }

  /** The network is gone: its responder stops. */
  drop(n: NetworkRecord): void {
    this.dns.get(n.Id)?.stop();
    this.dns.delete(n.Id);
  }

  /**
   * Names a container asking a network's responder resolves: on each network it is on (this one first), the
   * running containers' names, short ids and aliases, and its own links there; addresses of both families.
   */
  private lookup(n: NetworkRecord, name: string, from: string): string[] {
    const live = this.containers().filter((c) => c.State.Status === 'running' || c.State.Status === 'paused');
    const addrs = (ep: Endpoint | undefined) => (ep?.IPAddress ? (ep.GlobalIPv6Address ? [ep.IPAddress, ep.GlobalIPv6Address] : [ep.IPAddress]) : []);
    const asker = live.find((c) => addrs(c.Net?.Endpoints[n.Name]).includes(from));
    for (const net of new Set([n.Name, ...Object.keys(asker?.Net?.Endpoints ?? {})])) {
      if (net === DEFAULT_NETWORK) continue;
      for (const spec of asker?.Net?.Endpoints[net]?.Links ?? []) {
        const [target = '', alias = target] = spec.split(':');
        if (alias.toLowerCase() !== name) continue;
        const hit = live.find((c) => c.Name === target.replace(/^\//, '') || c.Id.startsWith(target));
        if (hit && addrs(hit.Net?.Endpoints[net]).length) return addrs(hit.Net?.Endpoints[net]);
      }
      const out: string[] = [];
      for (const c of live) {
        const ep = c.Net?.Endpoints[net];
        if (ep?.DNSNames.some((d) => d.toLowerCase() === name || `${d.toLowerCase()}.${net.toLowerCase()}` === name)) out.push(...addrs(ep));
      }
      if (out.length) return out;
    }
    return [];
  }

  /** Once the bridge holds the gateway address: the network's DNS responder listens there (user networks). */
  async ensure(n: NetworkRecord): Promise<void> {
    if (n.Name === DEFAULT_NETWORK || this.dns.get(n.Id)?.listening) return;
    const gw = n.IPAM.Config[0]!.Gateway;
    const r = new DnsResponder(gw, (name, from) => this.lookup(n, name, from), n.Driver === CLUSTER_DRIVER ? (name) => this.remote(n.Name, name) : undefined);
    try {
      await r.start();
      this.dns.set(n.Id, r);
    } catch (err) {
      this.log.warn({ network: n.Name, address: gw, err: errorMessage(err) }, 'embedded DNS not available; names resolve through /etc/hosts only');
    }
  }

  /** After an engine restart: responders again for the networks whose containers kept running. */
  async resume(nets: NetworkRecord[]): Promise<void> {
    for (const n of nets) {
      if (this.containers().some((c) => c.Net?.Endpoints[n.Name] && c.State.Status === 'running')) await this.ensure(n);
    }
  }

  close(): void {
    for (const r of this.dns.values()) r.stop();
    this.dns.clear();
  }

  /** resolv.conf of a container whose first network is a user network: its embedded DNS (unless --dns was given). */
  resolvConf(rec: ContainerRecord, hostConf: string): string | undefined {
    if (!rec.Net || rec.HostConfig.Dns.length) return undefined;
    const [name, ep] = Object.entries(rec.Net.Endpoints)[0] ?? [];
    if (!name || !ep || name === DEFAULT_NETWORK) return undefined;
    const n = this.network(ep.NetworkID);
    if (!n || !this.dns.get(n.Id)?.listening) return undefined;
    const keep = hostConf.split('\n').filter((l) => /^(search|options)\s/.test(l));
    return [`nameserver ${n.IPAM.Config[0]!.Gateway}`, ...keep].join('\n') + '\n';
  }

  /** /etc/hosts lines: the container's own addresses, and its peers on user networks (by name and alias). */
  hostsLines(rec: ContainerRecord, state: ContainerNet | undefined): string[] {
    if (!state) return [];
    const lines: string[] = [];
    const own = Object.values(state.Endpoints)[0];
    if (own?.IPAddress) lines.push(`${own.IPAddress}\t${rec.Config.Hostname}`);
    if (own?.GlobalIPv6Address) lines.push(`${own.GlobalIPv6Address}\t${rec.Config.Hostname}`);
    for (const [name, ep] of Object.entries(state.Endpoints)) {
      // where the network's DNS responder runs, it answers (and never goes stale); hosts entries are the fallback
      if (name === DEFAULT_NETWORK || this.dns.get(ep.NetworkID)?.listening) continue;
      for (const c of this.containers()) {
        if (c.Id === rec.Id) continue;
        const peer = c.Net?.Endpoints[name];
        if (!peer?.IPAddress || (c.State.Status !== 'running' && c.State.Status !== 'paused')) continue;
        lines.push(`${peer.IPAddress}\t${[...new Set(peer.DNSNames)].join(' ')}`);
      }
    }
    return lines;
  }

  /** A new container on a user network: its running peers learn its name (their hosts files are bind mounts). */
  async announce(rec: ContainerRecord, hostsPathOf: (id: string) => string): Promise<void> {
    if (!rec.Net) return;
    for (const [name, ep] of Object.entries(rec.Net.Endpoints)) {
      if (name === DEFAULT_NETWORK || !ep.IPAddress || this.dns.get(ep.NetworkID)?.listening) continue;
      for (const c of this.containers()) {
        if (c.Id === rec.Id || !c.Net?.Endpoints[name] || c.State.Status !== 'running') continue;
        await fs.appendFile(hostsPathOf(c.Id), `${ep.IPAddress}\t${[...new Set(ep.DNSNames)].join(' ')}\n`).catch(() => undefined);
      }
    }
  }
}
