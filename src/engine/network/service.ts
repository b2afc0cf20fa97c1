import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { atomicWriteJson, ensureDir, readJson } from '../../lib/fsutil.js';
import { conflict, invalid, notFound, errorMessage } from '../../lib/errors.js';
import { newId } from '../../lib/ids.js';
import type { Logger } from '../../lib/log.js';
import type { EventBus } from '../events.js';
import type { ContainerRecord } from '../containers/model.js';
import { Cni, type ConfList, type CniResult, type PluginConf } from './cni.js';
import { createNetns, removeNetns } from './netns.js';
import { NetworkNames, type RemoteNames } from './names.js';
import { planPorts } from './ports.js';
import { ensureIsolationChain, isolate } from './isolation.js';
import { bigToIp6, ip6ToBig, cidr6Last, cidr6String, cidrString, contains, contains6, inSubnet, intToIp, ipToInt, isIPv6, overlaps, overlaps6, parseCidr, parseCidr6 } from './ipnet.js';
import type { NetworkProvider } from './provider.js';
import { ClusterNetworks, clusterBridgeConf } from './cluster.js';
import { DEFAULT_NETWORK, ipv6Config, isCluster, type IpamConfig, type NetworkRecord, type Endpoint, type PortMapping, type ContainerNet, type EndpointSettings } from './model.js';

const run = promisify(execFile);

/** The networks a container joins when it starts: its NetworkMode's (unless disconnected from it) first, then those connected. */
export function wantedNetworks(rec: ContainerRecord): string[] {
  const mode = rec.HostConfig.NetworkMode;
  if (mode === 'host' || mode === 'none' || mode.startsWith('container:')) return [];
  const first = mode === 'default' ? DEFAULT_NETWORK : mode;
  const extra = Object.keys(rec.NetworkingConfig?.EndpointsConfig ?? {}).filter((k) => k !== first && k !== mode);
  return rec.PrimaryNetworkDisconnected ? extra : [first, ...extra];
}

export interface NetworkOptions {
  root: string;
  bridgeName: string;
  bridgeSubnet: string;
  /** "base=CIDR,size=PREFIX" (validated with the config). */
  defaultAddressPool: string;
  cniPluginDirs: string[];
  log: Logger;
  events: EventBus;
  /** The engine's containers (for inspect's Containers, rm's in-use check and /etc/hosts peers). */
  containers: () => ContainerRecord[];
}

/**
 * Docker's networks on CNI: bridge networks with host-local IPAM, portmap for published ports (planned in ports.ts),
 * isolated by isolation.ts's rules, names resolved by names.ts.
 */
export class NetworkService implements NetworkProvider {
  private readonly nets = new Map<string, NetworkRecord>();
  private readonly names: NetworkNames;
  readonly dir: string;
  readonly cni: Cni;
  /** The cluster networks the manager's `networks` and `peers` set up here (cluster.ts). */
  readonly cluster: ClusterNetworks;

  constructor(readonly o: NetworkOptions) {
    this.dir = path.join(o.root, 'networks');
    this.cni = new Cni(o.cniPluginDirs, path.join(o.root, 'cni', 'cache'));
    this.names = new NetworkNames(o.containers, (id) => this.find(id), o.log);
    this.cluster = new ClusterNetworks({
      list: () => this.list(),
      save: (n) => this.save(n),
      forget: (n) => this.forget(n),
      addresses: (n) => this.o.containers().flatMap((c) => c.Net?.Endpoints[n.Name]?.IPAddress || []),
      log: o.log,
    });
  }

  async init(): Promise<void> {
    await ensureDir(this.dir, 0o700);
    await ensureDir(path.join(this.o.root, 'cni', 'ipam'), 0o700);
    await this.cni.init();
    await this.load();
    await ensureIsolationChain().catch((err) => this.o.log.warn({ err: errorMessage(err) }, 'iptables isolation chain not set up'));
    if (!this.byName(DEFAULT_NETWORK)) {
      const c = parseCidr(this.o.bridgeSubnet);
      const n = this.newRecord(DEFAULT_NETWORK, cidrString(c), intToIp(c.base + 1), undefined, false, {}, this.o.bridgeName);
      n.Options = { 'com.docker.network.bridge.default_bridge': 'true', 'com.docker.network.bridge.name': this.o.bridgeName, 'com.docker.network.bridge.enable_ip_masquerade': 'true' };
      await this.save(n);
    }
    for (const n of this.nets.values()) await isolate(n, true).catch(() => undefined);
  }

  /** The network records, read without touching the host (init and `sampan engine cleanup`). */
  async load(): Promise<void> {
    for (const f of await fs.readdir(this.dir).catch(() => [])) {
      if (!f.endsWith('.json')) continue;
      try {
        const n = await readJson<NetworkRecord>(path.join(this.dir, f));
        this.nets.set(n.Id, n);
      } catch (err) {
        this.o.log.warn({ file: f, err: errorMessage(err) }, 'skipping unreadable network');
      }
    }
  }

  private byName(name: string): NetworkRecord | undefined {
    for (const n of this.nets.values()) if (n.Name === name) return n;
    return undefined;
  }

  list(): NetworkRecord[] {
    return [...this.nets.values()];
  }

  find(ref: string): NetworkRecord | undefined {
    const n = this.nets.get(ref) ?? this.byName(ref);
    if (n) return n;
    const hits = [...this.nets.values()].filter((x) => x.Id.startsWith(ref));
    return hits.length === 1 ? hits[0] : undefined;
  }

  get(ref: string): NetworkRecord {
    const n = this.find(ref);
    if (!n) throw notFound(`network ${ref} not found`);
    return n;
  }

  async save(n: NetworkRecord): Promise<void> {
    await atomicWriteJson(path.join(this.dir, `${n.Id}.json`), n);
    this.nets.set(n.Id, n);
  }

  private newRecord(name: string, subnet: string, gateway: string, ipRange: string | undefined, internal: boolean, labels: Record<string, string>, bridge?: string): NetworkRecord {
    const id = newId();
    return {
      Name: name,
      Id: id,
      Created: new Date().toISOString(),
      Scope: 'local',
      Driver: 'bridge',
      EnableIPv6: false,
      IPAM: { Driver: 'default', Options: null, Config: [{ Subnet: subnet, Gateway: gateway, ...(ipRange ? { IPRange: ipRange } : {}) }] },
      Internal: internal,
      Attachable: false,
      Ingress: false,
      Options: {},
      Labels: labels,
      BridgeName: bridge ?? `sampan-${id.slice(0, 8)}`,
    };
  }

  /** Subnets in use on this host (routes) and by this engine's networks. */
  private async usedSubnets(): Promise<ReturnType<typeof parseCidr>[]> {
    const used = [...this.nets.values()].map((n) => parseCidr(n.IPAM.Config[0]!.Subnet));
    const out = await run('ip', ['-4', 'route', 'show']).then((r) => r.stdout, () => '');
    for (const line of out.split('\n')) {
      const m = /^(\d+\.\d+\.\d+\.\d+\/\d+)/.exec(line);
      if (m) {
        try {
          used.push(parseCidr(m[1]!));
        } catch {
          // a /31 or /32 route
        }
      }
    }
    return used;
  }

  async create(body: { Name?: string; Driver?: string; Internal?: boolean; Attachable?: boolean; EnableIPv6?: boolean; Labels?: Record<string, string> | null; Options?: Record<string, string> | null; IPAM?: { Driver?: string; Config?: Array<Partial<IpamConfig>> | null } | null; CheckDuplicate?: boolean }): Promise<{ Id: string; Warning: string }> {
    const name = body.Name ?? '';
    // Docker takes any name that is not blank (spaces, dots, slashes)
    if (!name.trim()) throw invalid(`invalid name: ${name}`);
    if (this.byName(name)) throw conflict(`network with name ${name} already exists`);
    if (body.Driver === 'overlay' || body.Driver === 'sampan-cluster') throw invalid('cluster networks are created through the cluster manager');
    if (body.Driver && body.Driver !== 'bridge') throw invalid(`only the bridge driver is supported, not "${body.Driver}"`);
    const cfgs = body.IPAM?.Config ?? [];
    const v6cfgs = cfgs.filter((c) => c.Subnet && isIPv6(c.Subnet));
    const v4cfgs = cfgs.filter((c) => !v6cfgs.includes(c));
    if (v4cfgs.length > 1 || v6cfgs.length > 1) throw invalid('one IPv4 and one IPv6 subnet per network are supported');
    // without a default IPv6 pool, as dockerd 20.10
    if (body.EnableIPv6 && !v6cfgs.length) throw conflict('could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network');
    const cfg = v4cfgs[0] ?? {};
    const used = await this.usedSubnets();
    let subnet: ReturnType<typeof parseCidr>;
    try {
      if (cfg.Subnet) {
        subnet = parseCidr(cfg.Subnet);
        const mine = [...this.nets.values()].find((n) => overlaps(parseCidr(n.IPAM.Config[0]!.Subnet), subnet));
        if (mine) throw conflict(`invalid pool request: Pool overlaps with other one on this address space (network ${mine.Name})`);
      } else {
        const [, base, size] = /^base=([^,]+),size=(\d+)$/.exec(this.o.defaultAddressPool)!;
        const pool = parseCidr(base!);
        const step = 2 ** (32 - Number(size));
        let pick: ReturnType<typeof parseCidr> | undefined;
        for (let at = pool.base; at < pool.base + pool.size && !pick; at += step) {
          const c = parseCidr(`${intToIp(at)}/${size}`);
          if (!used.some((u) => overlaps(u, c))) pick = c;
        }
        if (!pick) throw conflict('could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network');
        subnet = pick;
      }
      const gw = cfg.Gateway ?? intToIp(subnet.base + 1);
      if (!contains(subnet, gw)) throw invalid(`invalid gateway ${gw}: not in subnet ${cidrString(subnet)}`);
      if (cfg.IPRange) {
        const r = parseCidr(cfg.IPRange);
        if (r.base < subnet.base || r.base + r.size > subnet.base + subnet.size) throw invalid(`ip-range ${cfg.IPRange} is not inside subnet ${cidrString(subnet)}`);
      }
      const n = this.newRecord(name, cidrString(subnet), gw, cfg.IPRange, !!body.Internal, body.Labels ?? {});
      if (cfg.AuxiliaryAddresses && Object.keys(cfg.AuxiliaryAddresses).length) n.IPAM.Config[0]!.AuxiliaryAddresses = cfg.AuxiliaryAddresses;
      if (v6cfgs[0]) n.IPAM.Config.push(this.ipv6Subnet(v6cfgs[0]));
      n.EnableIPv6 = !!body.EnableIPv6;
      for (const c of n.IPAM.Config) {
        for (const [k, ip] of Object.entries(c.AuxiliaryAddresses ?? {})) if (!inSubnet(c.Subnet, ip)) throw invalid(`auxiliary address: (${k}:${ip}) must belong to the master pool: ${c.Subnet}`);
      }
      n.Attachable = !!body.Attachable;
      n.Options = body.Options ?? {};
      await this.reserveAuxiliary(n);
      await this.save(n);
      await isolate(n, true).catch((err) => this.o.log.warn({ err: errorMessage(err) }, 'isolation rules not added'));
      this.o.events.emit('network', 'create', n.Id, { name: n.Name, type: 'bridge' });
      return { Id: n.Id, Warning: '' };
    } catch (err) {
      if (err instanceof Error && /^invalid (CIDR|prefix|IPv4|IPv6)/.test(err.message)) throw invalid(err.message);
      throw err;
    }
  }

  /** A network's IPv6 subnet: checked, its gateway the first address unless given. */
  private ipv6Subnet(cfg: Partial<IpamConfig>): IpamConfig {
    const subnet = parseCidr6(cfg.Subnet!);
    const mine = [...this.nets.values()].find((n) => n.IPAM.Config.some((c) => isIPv6(c.Subnet) && overlaps6(parseCidr6(c.Subnet), subnet)));
    if (mine) throw conflict(`invalid pool request: Pool overlaps with other one on this address space (network ${mine.Name})`);
    const gw = cfg.Gateway ?? bigToIp6(subnet.base + 1n);
    if (!contains6(subnet, gw)) throw invalid(`failed to allocate gateway (${gw}): Requested address is out of range`);
    if (cfg.IPRange) {
      const r = parseCidr6(cfg.IPRange);
      if (r.base < subnet.base || cidr6Last(r) > cidr6Last(subnet)) throw invalid(`ip-range ${cfg.IPRange} is not inside subnet ${cidr6String(subnet)}`);
    }
    const out: IpamConfig = { Subnet: cidr6String(subnet), Gateway: gw };
    if (cfg.IPRange) out.IPRange = cidr6String(parseCidr6(cfg.IPRange));
    if (cfg.AuxiliaryAddresses && Object.keys(cfg.AuxiliaryAddresses).length) out.AuxiliaryAddresses = cfg.AuxiliaryAddresses;
    return out;
  }

  /** Auxiliary addresses are leases of no container in host-local's store, so it never hands them out. */
  private async reserveAuxiliary(n: NetworkRecord): Promise<void> {
    const dir = path.join(this.o.root, 'cni', 'ipam', this.cniName(n));
    for (const c of n.IPAM.Config) {
      for (const [k, ip] of Object.entries(c.AuxiliaryAddresses ?? {})) {
        await ensureDir(dir, 0o700);
        // host-local names a lease by the address as Go prints it
        await fs.writeFile(path.join(dir, isIPv6(ip) ? bigToIp6(ip6ToBig(ip)) : ip), `auxiliary address ${k}`);
      }
    }
  }

  /** Containers with an endpoint on the network (running ones), or configured for it. */
  users(n: NetworkRecord): ContainerRecord[] {
    return this.o.containers().filter((c) => this.wanted(c).includes(n.Name) || (c.Net && Object.keys(c.Net.Endpoints).includes(n.Name)));
  }

  async remove(ref: string): Promise<void> {
    const n = this.get(ref);
    if (n.Name === DEFAULT_NETWORK || n.Name === 'host' || n.Name === 'none') throw conflict(`${n.Name} is a pre-defined network and cannot be removed`);
    if (isCluster(n)) throw invalid(`${n.Name} is a cluster network: remove it through the cluster manager`);
    const active = this.o.containers().filter((c) => c.Net && n.Name in c.Net.Endpoints);
    if (active.length) throw conflict(`error while removing network: network ${n.Name} id ${n.Id} has active endpoints`);
    await this.forget(n);
  }

  /** The network's record, bridge, rules and leases go. */
  private async forget(n: NetworkRecord): Promise<void> {
    this.names.drop(n);
    await isolate(n, false).catch(() => undefined);
    await run('ip', ['link', 'delete', n.BridgeName]).catch(() => undefined);
    await fs.rm(path.join(this.dir, `${n.Id}.json`), { force: true });
    await fs.rm(path.join(this.o.root, 'cni', 'ipam', this.cniName(n)), { recursive: true, force: true });
    this.nets.delete(n.Id);
    this.o.events.emit('network', 'destroy', n.Id, { name: n.Name, type: n.Driver });
  }

  async prune(): Promise<string[]> {
    const gone: string[] = [];
    for (const n of this.list()) {
      if (n.Name === DEFAULT_NETWORK) continue;
      if (this.o.containers().some((c) => c.Net && n.Name in c.Net.Endpoints)) continue;
      if (this.users(n).length) continue;
      await this.remove(n.Id).then(() => gone.push(n.Name), () => undefined);
    }
    return gone;
  }

  // ---------- containers ----------

  /** The network names a container is to be attached to, in order (the first carries the published ports). */
  wanted(rec: ContainerRecord): string[] {
    return wantedNetworks(rec);
  }

  /** At create: the networks named exist, --ip is given only where Docker allows it, MAC addresses are ones. */
  checkCreate(rec: ContainerRecord): void {
    for (const mac of [rec.Config.MacAddress, ...Object.values(rec.NetworkingConfig?.EndpointsConfig ?? {}).map((c) => c?.MacAddress)]) checkMac(mac);
    for (const nm of this.wanted(rec)) {
      const n = this.find(nm);
      if (!n) throw notFound(`network ${nm} not found`);
      checkRequestedIps(n, rec.NetworkingConfig?.EndpointsConfig?.[nm]?.IPAMConfig);
    }
  }

  private cniName(n: NetworkRecord): string {
    return `sampan-${n.Id.slice(0, 12)}`;
  }

  /** The conflist for an attachment; portmap only when there are ports to map (each plugin is an exec). */
  private confList(n: NetworkRecord, ips: string[] = [], withPorts = true, mac?: string): ConfList {
    const plugins: ConfList['plugins'] = [isCluster(n) ? clusterBridgeConf(n, ips[0]) : this.bridgeConf(n, ips)];
    if (withPorts) plugins.push({ type: 'portmap', capabilities: { portMappings: true }, snat: true });
    // only where asked: one more plugin run per start
    if (mac) plugins.push({ type: 'tuning', mac });
    return { cniVersion: '1.0.0', name: this.cniName(n), plugins };
  }

  /** A local network's bridge plugin, with host-local IPAM. */
  private bridgeConf(n: NetworkRecord, ips: string[]): PluginConf {
    const c = n.IPAM.Config[0]!;
    const range: Record<string, string> = { subnet: c.Subnet, gateway: c.Gateway };
    if (c.IPRange) {
      const r = parseCidr(c.IPRange);
      range.rangeStart = intToIp(Math.max(r.base, parseCidr(c.Subnet).base + 1));
      range.rangeEnd = intToIp(r.base + r.size - 2);
    }
    const ranges = [[range]];
    const routes = n.Internal ? [] : [{ dst: '0.0.0.0/0' }];
    const c6 = ipv6Config(n);
    if (c6) {
      const range6: Record<string, string> = { subnet: c6.Subnet, gateway: c6.Gateway };
      if (c6.IPRange) {
        const r = parseCidr6(c6.IPRange);
        range6.rangeStart = bigToIp6(r.base > parseCidr6(c6.Subnet).base ? r.base : r.base + 1n);
        range6.rangeEnd = bigToIp6(cidr6Last(r));
      }
      ranges.push([range6]);
      if (!n.Internal) routes.push({ dst: '::/0' });
    }
    const bridge: PluginConf = {
      type: 'bridge',
      bridge: n.BridgeName,
      isGateway: true,
      // one MASQUERADE rule per network (see isolation) instead of the plugin's iptables chain per container
      ipMasq: false,
      hairpinMode: true,
      ipam: { type: 'host-local', ranges, routes, dataDir: path.join(this.o.root, 'cni', 'ipam') },
    };
    if (ips.length) bridge.args = { cni: { ips } };
    return bridge;
  }

  /**
   * Before runc create: the container's named network namespace with an endpoint on each of its networks.
   * Returns the namespace path for the OCI spec, or undefined where the engine makes no namespace (none, host, container:).
   */
  async attach(rec: ContainerRecord): Promise<ContainerNet | undefined> {
    const names = this.wanted(rec);
    if (!names.length) return undefined;
    const nets = names.map((nm) => this.get(nm));
    const ports = await planPorts(rec, this.o.containers());
    const netnsPath = await createNetns(rec.Id);
    const state: ContainerNet = { Netns: netnsPath, Endpoints: {}, Ports: ports };
    try {
      for (const [i, n] of nets.entries()) {
        const epConf = rec.NetworkingConfig?.EndpointsConfig?.[n.Name] ?? (i === 0 && rec.HostConfig.NetworkMode === 'default' ? rec.NetworkingConfig?.EndpointsConfig?.default : undefined);
        // the deprecated Config.MacAddress is the first network's
        const mac = epConf?.MacAddress || (i === 0 ? rec.Config.MacAddress : undefined);
        state.Endpoints[n.Name] = await this.attachOne(rec, n, `eth${i}`, netnsPath, mac ? { ...epConf, MacAddress: mac } : epConf, i === 0 ? ports : []);
      }
    } catch (err) {
      await this.detach(rec, state).catch(() => undefined);
      throw err;
    }
    return state;
  }

  private async attachOne(rec: ContainerRecord, n: NetworkRecord, ifname: string, netnsPath: string, epConf: EndpointSettings | undefined, ports: PortMapping[]): Promise<Endpoint> {
    const ips = checkRequestedIps(n, epConf?.IPAMConfig);
    for (const ip of ips) {
      const holder = this.o.containers().find((c) => c.Id !== rec.Id && [c.Net?.Endpoints[n.Name]?.IPAddress, c.Net?.Endpoints[n.Name]?.GlobalIPv6Address].includes(ip));
      if (holder) throw conflict(`Address already in use: ${ip} is used by container ${holder.Name}`);
    }
    const mac = epConf?.MacAddress || undefined;
    checkMac(mac);
    if (isCluster(n)) await this.cluster.ready(n, ips[0]!);
    const runtimeConfig = ports.length ? { portMappings: ports.map((p) => ({ hostPort: p.HostPort, containerPort: p.ContainerPort, protocol: p.Protocol, hostIP: p.HostIp === '0.0.0.0' ? '' : p.HostIp })) } : undefined;
    // a namespace may start with IPv6 off (a host's sysctl defaults): an IPv6 network needs it on there
    if (ipv6Config(n)) await run('ip', ['netns', 'exec', path.basename(netnsPath), 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=0', 'net.ipv6.conf.default.disable_ipv6=0']);
    let result: CniResult;
    try {
      result = await this.cni.add(this.confList(n, ips, !!runtimeConfig, mac), { containerId: rec.Id, netns: netnsPath, ifname, runtimeConfig });
    } catch (err) {
      const msg = errorMessage(err);
      if (ips.length && /already allocated|requested IP address/.test(msg)) throw conflict(`Address already in use: ${ips.join(', ')}`);
      throw invalid(`failed to set up network ${n.Name} for container ${rec.Name}: ${msg}`);
    }
    // published ports reach the container from the host's loopback too
    if (ports.some((p) => p.HostIp === '0.0.0.0' || p.HostIp.startsWith('127.'))) {
      await fs.writeFile(`/proc/sys/net/ipv4/conf/${n.BridgeName}/route_localnet`, '1').catch(() => undefined);
    }
    await this.names.ensure(n);
    const ipc = result.ips?.find((x) => !isIPv6(x.address));
    const ipc6 = result.ips?.find((x) => isIPv6(x.address));
    const [addr, prefix] = (ipc?.address ?? '/0').split('/');
    const [addr6 = '', prefix6] = (ipc6?.address ?? '').split('/');
    const iface = result.interfaces?.find((x) => x.name === ifname && x.sandbox);
    const aliases = [...new Set([...(epConf?.Aliases ?? [])])];
    return {
      NetworkID: n.Id,
      EndpointID: newId(),
      IPAddress: addr ?? '',
      IPPrefixLen: Number(prefix ?? 0),
      Gateway: ipc?.gateway ?? n.IPAM.Config[0]!.Gateway,
      MacAddress: iface?.mac ?? '',
      Aliases: aliases.length ? aliases : null,
      DNSNames: n.Name === DEFAULT_NETWORK ? [] : [rec.Name, rec.Id.slice(0, 12), ...aliases],
      IPAMConfig: epConf?.IPAMConfig?.IPv4Address || epConf?.IPAMConfig?.IPv6Address ? epConf.IPAMConfig : null,
      IfName: ifname,
      GlobalIPv6Address: addr6,
      GlobalIPv6PrefixLen: Number(prefix6 ?? 0),
      IPv6Gateway: addr6 ? (ipc6?.gateway ?? ipv6Config(n)?.Gateway ?? '') : '',
      Links: epConf?.Links?.length ? epConf.Links : null,
    };
  }

  /** docker network connect: configured for the next start, and attached now if the container runs. */
  async connect(rec: ContainerRecord, ref: string, settings: EndpointSettings): Promise<void> {
    const n = this.get(ref);
    if (rec.Net?.Endpoints[n.Name] || this.wanted(rec).includes(n.Name)) throw conflict(`endpoint with name ${rec.Name} already exists in network ${n.Name}`);
    const mode = rec.HostConfig.NetworkMode;
    if (mode === 'host' || mode === 'none' || mode.startsWith('container:')) throw invalid(`container cannot be disconnected from host network or connected to host network`);
    checkRequestedIps(n, settings.IPAMConfig);
    checkMac(settings.MacAddress);
    rec.NetworkingConfig ??= {};
    rec.NetworkingConfig.EndpointsConfig ??= {};
    if (rec.Net && (rec.State.Status === 'running' || rec.State.Status === 'paused')) {
      const used = new Set(Object.values(rec.Net.Endpoints).map((e) => e.IfName));
      let i = 0;
      while (used.has(`eth${i}`)) i++;
      rec.Net.Endpoints[n.Name] = await this.attachOne(rec, n, `eth${i}`, rec.Net.Netns, settings, []);
    }
    // kept whole: the next start attaches with the same address, MAC, aliases, links and driver options
    const { IPAMConfig = null, Aliases = null, Links = null, DriverOpts = null, MacAddress } = settings;
    rec.NetworkingConfig.EndpointsConfig[n.Name] = { IPAMConfig, Aliases, Links, DriverOpts, ...(MacAddress ? { MacAddress } : {}) };
    if (this.isPrimary(rec, n)) delete rec.PrimaryNetworkDisconnected;
    this.o.events.emit('network', 'connect', n.Id, { name: n.Name, type: 'bridge', container: rec.Id });
  }

  async disconnect(rec: ContainerRecord, ref: string): Promise<void> {
    const n = this.get(ref);
    const ep = rec.Net?.Endpoints[n.Name];
    if (!ep && !this.wanted(rec).includes(n.Name)) throw invalid(`container ${rec.Id} is not connected to network ${n.Name}`);
    if (ep && rec.Net) {
      await this.cni.del(this.cniName(n), rec.Id, ep.IfName, { list: this.confList(n), netns: rec.Net.Netns });
      delete rec.Net.Endpoints[n.Name];
    }
    if (rec.NetworkingConfig?.EndpointsConfig) delete rec.NetworkingConfig.EndpointsConfig[n.Name];
    if (this.isPrimary(rec, n)) rec.PrimaryNetworkDisconnected = true;
    this.o.events.emit('network', 'disconnect', n.Id, { name: n.Name, type: 'bridge', container: rec.Id });
  }

  private isPrimary(rec: ContainerRecord, n: NetworkRecord): boolean {
    const mode = rec.HostConfig.NetworkMode;
    return mode === n.Name || mode === n.Id || (mode === 'default' && n.Name === DEFAULT_NETWORK);
  }

  /** At exit and rm: every endpoint's CNI DEL (releasing the lease, the veth and the rules), then the namespace. */
  async detach(rec: ContainerRecord, state: ContainerNet | undefined = rec.Net): Promise<void> {
    if (!state) {
      await removeNetns(rec.Id);
      return;
    }
    const eps = Object.entries(state.Endpoints).map(([name, ep]) => {
      const n = this.find(ep.NetworkID) ?? this.find(name);
      return { name, ep, n, cniName: n ? this.cniName(n) : `sampan-${ep.NetworkID.slice(0, 12)}` };
    });
    // the namespace goes first: the kernel then tears the veth down in the background, where a veth delete
    // inside DEL would wait ~20 ms for it (endpoints from before the engine did its own NAT still need it)
    const needed = await Promise.all(eps.map((x) => this.cni.delNeedsNetns(x.cniName, rec.Id, x.ep.IfName)));
    if (!needed.includes(true)) await removeNetns(rec.Id);
    for (const { name, ep, n, cniName } of eps) {
      try {
        await this.cni.del(cniName, rec.Id, ep.IfName, n ? { list: this.confList(n), netns: state.Netns } : undefined);
      } catch (err) {
        this.o.log.warn({ id: rec.Id.slice(0, 12), network: name, err: errorMessage(err) }, 'CNI DEL failed');
      }
    }
    await removeNetns(rec.Id);
  }

  // ---------- names (names.ts) ----------

  addRemoteNames(r: RemoteNames): () => void {
    return this.names.addRemote(r);
  }

  /** After an engine restart: responders again for the networks whose containers kept running. */
  resumeDns(): Promise<void> {
    return this.names.resume([...this.nets.values()]);
  }

  close(): void {
    this.names.close();
  }

  resolvConf(rec: ContainerRecord, hostConf: string): string | undefined {
    return this.names.resolvConf(rec, hostConf);
  }

  hostsLines(rec: ContainerRecord, state: ContainerNet | undefined): string[] {
    return this.names.hostsLines(rec, state);
  }

  announce(rec: ContainerRecord, hostsPathOf: (id: string) => string): Promise<void> {
    return this.names.announce(rec, hostsPathOf);
  }
}

/** The addresses asked for on a network (--ip, --ip6): user networks only, each inside its subnet. */
function checkRequestedIps(n: NetworkRecord, c: EndpointSettings['IPAMConfig']): string[] {
  const ips = [c?.IPv4Address, c?.IPv6Address].filter((x): x is string => !!x);
  if (isCluster(n) && !c?.IPv4Address) throw invalid(`network ${n.Name} is a cluster network: cluster addresses come from the cluster manager (create the container through it)`);
  if (!ips.length) return [];
  // Docker refuses --ip on the default network
  if (n.Name === DEFAULT_NETWORK) throw invalid('user specified IP address is supported on user defined networks only');
  for (const ip of ips) {
    const subnet = isIPv6(ip) ? ipv6Config(n)?.Subnet : n.IPAM.Config[0]!.Subnet;
    if (!subnet || !inSubnet(subnet, ip)) throw invalid(isIPv6(ip) ? `Invalid address ${ip}: It does not belong to any of this network's subnets` : `no configured subnet or ip-range contain the IP address ${ip}`);
  }
  return ips;
}

function checkMac(mac: string | undefined): void {
  if (mac && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) throw invalid(`invalid MAC address: ${mac}`);
}

export { ipToInt };
