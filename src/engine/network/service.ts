import { promises as fs } from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import dgram from 'node:dgram';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { atomicWriteJson, ensureDir, readJson } from '../../lib/fsutil.js';
import { conflict, invalid, notFound, errorMessage } from '../../lib/errors.js';
import { newId } from '../../lib/ids.js';
import type { Logger } from '../../lib/log.js';
import type { EventBus } from '../events.js';
import type { ContainerRecord } from '../containers/model.js';
import { Cni, type ConfList, type CniResult } from './cni.js';
import { createNetns, removeNetns } from './netns.js';
import { DnsResponder } from './dns.js';
import { cidrString, contains, intToIp, ipToInt, overlaps, parseCidr } from './ipnet.js';

const run = promisify(execFile);
/** The isolation rules' chain, jumped to from FORWARD. */
export const CHAIN = 'SAMPAN-ISOLATION';
export const DEFAULT_NETWORK = 'bridge';

/** The networks a container joins when it starts: its NetworkMode's (unless disconnected from it) first, then those connected. */
export function wantedNetworks(rec: ContainerRecord): string[] {
  const mode = rec.HostConfig.NetworkMode;
  if (mode === 'host' || mode === 'none' || mode.startsWith('container:')) return [];
  const first = mode === 'default' ? DEFAULT_NETWORK : mode;
  const extra = Object.keys(rec.NetworkingConfig?.EndpointsConfig ?? {}).filter((k) => k !== first && k !== mode);
  return rec.PrimaryNetworkDisconnected ? extra : [first, ...extra];
}

export interface NetworkRecord {
  Name: string;
  Id: string;
  Created: string;
  Scope: 'local';
  Driver: 'bridge';
  EnableIPv6: boolean;
  IPAM: { Driver: string; Options: Record<string, string> | null; Config: Array<{ Subnet: string; Gateway: string; IPRange?: string }> };
  Internal: boolean;
  Attachable: boolean;
  Ingress: boolean;
  Options: Record<string, string>;
  Labels: Record<string, string>;
  /** The Linux bridge behind it. */
  BridgeName: string;
}

export interface Endpoint {
  NetworkID: string;
  EndpointID: string;
  IPAddress: string;
  IPPrefixLen: number;
  Gateway: string;
  MacAddress: string;
  Aliases: string[] | null;
  DNSNames: string[];
  IPAMConfig: { IPv4Address?: string } | null;
  IfName: string;
}

export interface PortMapping {
  HostIp: string;
  HostPort: number;
  ContainerPort: number;
  Protocol: 'tcp' | 'udp';
}

/** A container's network state, kept in its record so that it survives an engine restart. */
export interface ContainerNet {
  Netns: string;
  Endpoints: Record<string, Endpoint>;
  Ports: PortMapping[];
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

/** Docker's networks on CNI: bridge networks with host-local IPAM, portmap for published ports. */
export class NetworkService {
  private readonly nets = new Map<string, NetworkRecord>();
  /** The embedded DNS responder of each user network that has had an endpoint, by network id. */
  private readonly dns = new Map<string, DnsResponder>();
  readonly dir: string;
  readonly cni: Cni;

  constructor(readonly o: NetworkOptions) {
    this.dir = path.join(o.root, 'networks');
    this.cni = new Cni(o.cniPluginDirs, path.join(o.root, 'cni', 'cache'));
  }

  async init(): Promise<void> {
    await ensureDir(this.dir, 0o700);
    await ensureDir(path.join(this.o.root, 'cni', 'ipam'), 0o700);
    await this.cni.init();
    await this.load();
    await this.ensureChain().catch((err) => this.o.log.warn({ err: errorMessage(err) }, 'iptables isolation chain not set up'));
    if (!this.byName(DEFAULT_NETWORK)) {
      const c = parseCidr(this.o.bridgeSubnet);
      const n = this.newRecord(DEFAULT_NETWORK, cidrString(c), intToIp(c.base + 1), undefined, false, {}, this.o.bridgeName);
      n.Options = { 'com.docker.network.bridge.default_bridge': 'true', 'com.docker.network.bridge.name': this.o.bridgeName, 'com.docker.network.bridge.enable_ip_masquerade': 'true' };
      await this.save(n);
    }
    for (const n of this.nets.values()) await this.isolation(n, true).catch(() => undefined);
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

  private async save(n: NetworkRecord): Promise<void> {
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

  async create(body: { Name?: string; Driver?: string; Internal?: boolean; Attachable?: boolean; EnableIPv6?: boolean; Labels?: Record<string, string> | null; Options?: Record<string, string> | null; IPAM?: { Driver?: string; Config?: Array<{ Subnet?: string; Gateway?: string; IPRange?: string }> | null } | null; CheckDuplicate?: boolean }): Promise<{ Id: string; Warning: string }> {
    const name = body.Name ?? '';
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) throw invalid(`invalid network name: "${name}"`);
    if (this.byName(name)) throw conflict(`network with name ${name} already exists`);
    if (body.Driver && body.Driver !== 'bridge') throw invalid(`only the bridge driver is supported, not "${body.Driver}"`);
    if (body.EnableIPv6) throw invalid('IPv6 networks are not supported');
    const cfg = body.IPAM?.Config?.[0] ?? {};
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
      n.Attachable = !!body.Attachable;
      n.Options = body.Options ?? {};
      await this.save(n);
      await this.isolation(n, true).catch((err) => this.o.log.warn({ err: errorMessage(err) }, 'isolation rules not added'));
      this.o.events.emit('network', 'create', n.Id, { name: n.Name, type: 'bridge' });
      return { Id: n.Id, Warning: '' };
    } catch (err) {
      if (err instanceof Error && /^invalid (CIDR|prefix|IPv4)/.test(err.message)) throw invalid(err.message);
      throw err;
    }
  }

  /** Containers with an endpoint on the network (running ones), or configured for it. */
  users(n: NetworkRecord): ContainerRecord[] {
    return this.o.containers().filter((c) => this.wanted(c).includes(n.Name) || (c.Net && Object.keys(c.Net.Endpoints).includes(n.Name)));
  }

  async remove(ref: string): Promise<void> {
    const n = this.get(ref);
    if (n.Name === DEFAULT_NETWORK || n.Name === 'host' || n.Name === 'none') throw conflict(`${n.Name} is a pre-defined network and cannot be removed`);
    const active = this.o.containers().filter((c) => c.Net && n.Name in c.Net.Endpoints);
    if (active.length) throw conflict(`error while removing network: network ${n.Name} id ${n.Id} has active endpoints`);
    this.dns.get(n.Id)?.stop();
    this.dns.delete(n.Id);
    await this.isolation(n, false).catch(() => undefined);
    await run('ip', ['link', 'delete', n.BridgeName]).catch(() => undefined);
    await fs.rm(path.join(this.dir, `${n.Id}.json`), { force: true });
    await fs.rm(path.join(this.o.root, 'cni', 'ipam', this.cniName(n)), { recursive: true, force: true });
    this.nets.delete(n.Id);
    this.o.events.emit('network', 'destroy', n.Id, { name: n.Name, type: 'bridge' });
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

  // ---------- iptables isolation between networks ----------

  private async ipt(args: string[]): Promise<boolean> {
    return run('iptables', ['-w', ...args]).then(() => true, () => false);
  }

  private async ensureChain(): Promise<void> {
    await this.ipt(['-N', CHAIN]);
    if (!(await this.ipt(['-C', 'FORWARD', '-j', CHAIN]))) {
      if (!(await this.ipt(['-I', 'FORWARD', '1', '-j', CHAIN]))) throw new Error('iptables: cannot add the isolation chain');
    }
  }

  /** Traffic stays inside its bridge: nothing is forwarded from one engine network to another (or out, if internal). */
  private isolationRules(n: NetworkRecord): Array<{ where: 'I' | 'A'; rule: string[] }> {
    // tagged by bridge: one set of rules per bridge, however many engines share it
    const tag = ['-m', 'comment', '--comment', `sampan:${n.BridgeName}`];
    // REJECT rather than DROP: a refused connection fails at once instead of after the TCP timeout
    const deny = ['-j', 'REJECT'];
    const out: Array<{ where: 'I' | 'A'; rule: string[] }> = [{ where: 'I', rule: ['-i', n.BridgeName, '-o', n.BridgeName, ...tag, '-j', 'RETURN'] }];
    out.push({ where: 'A', rule: n.Internal ? ['-i', n.BridgeName, ...tag, ...deny] : ['-i', n.BridgeName, '-o', 'sampan+', ...tag, ...deny] });
    if (n.Internal) out.push({ where: 'A', rule: ['-o', n.BridgeName, ...tag, ...deny] });
    return out;
  }

  async isolation(n: NetworkRecord, add: boolean): Promise<void> {
    for (const { where, rule } of this.isolationRules(n)) {
      const present = await this.ipt(['-C', CHAIN, ...rule]);
      if (add && !present) await this.ipt([where === 'I' ? '-I' : '-A', CHAIN, ...rule]);
      if (!add) while (await this.ipt(['-D', CHAIN, ...rule]));
    }
    if (n.Internal) return;
    // outbound NAT for the whole subnet, as dockerd does it
    const masq = ['POSTROUTING', '-s', n.IPAM.Config[0]!.Subnet, '!', '-o', n.BridgeName, '-m', 'comment', '--comment', `sampan:${n.BridgeName}`, '-j', 'MASQUERADE'];
    const present = await this.ipt(['-t', 'nat', '-C', ...masq]);
    if (add && !present) await this.ipt(['-t', 'nat', '-A', ...masq]);
    if (!add) while (await this.ipt(['-t', 'nat', '-D', ...masq]));
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
      const ip = rec.NetworkingConfig?.EndpointsConfig?.[nm]?.IPAMConfig?.IPv4Address;
      if (ip && n.Name === DEFAULT_NETWORK) throw invalid('user specified IP address is supported on user defined networks only');
      if (ip && !contains(parseCidr(n.IPAM.Config[0]!.Subnet), ip)) throw invalid(`no configured subnet or ip-range contain the IP address ${ip}`);
    }
  }

  private cniName(n: NetworkRecord): string {
    return `sampan-${n.Id.slice(0, 12)}`;
  }

  /** The conflist for an attachment; portmap only when there are ports to map (each plugin is an exec). */
  private confList(n: NetworkRecord, ip?: string, withPorts = true, mac?: string): ConfList {
    const c = n.IPAM.Config[0]!;
    const range: Record<string, string> = { subnet: c.Subnet, gateway: c.Gateway };
    if (c.IPRange) {
      const r = parseCidr(c.IPRange);
      range.rangeStart = intToIp(Math.max(r.base, parseCidr(c.Subnet).base + 1));
      range.rangeEnd = intToIp(r.base + r.size - 2);
    }
    const bridge: Record<string, unknown> & { type: string } = {
      type: 'bridge',
      bridge: n.BridgeName,
      isGateway: true,
      // one MASQUERADE rule per network (see isolation) instead of the plugin's iptables chain per container
      ipMasq: false,
      hairpinMode: true,
      ipam: { type: 'host-local', ranges: [[range]], routes: n.Internal ? [] : [{ dst: '0.0.0.0/0' }], dataDir: path.join(this.o.root, 'cni', 'ipam') },
    };
    if (ip) bridge.args = { cni: { ips: [ip] } };
    const plugins: ConfList['plugins'] = [bridge];
    if (withPorts) plugins.push({ type: 'portmap', capabilities: { portMappings: true }, snat: true });
    // only where asked: one more plugin run per start
    if (mac) plugins.push({ type: 'tuning', mac });
    return { cniVersion: '1.0.0', name: this.cniName(n), plugins };
  }

  /** -p and -P: the host ports to map, with -P's random ports chosen now; a port already taken is a clear error. */
  private async planPorts(rec: ContainerRecord): Promise<PortMapping[]> {
    const out: PortMapping[] = [];
    const bindings = { ...(rec.HostConfig.PortBindings ?? {}) };
    if (rec.HostConfig.PublishAllPorts) for (const p of Object.keys(rec.Config.ExposedPorts ?? {})) if (!bindings[p]?.length) bindings[p] = [{ HostIp: '', HostPort: '' }];
    const taken = new Set<string>();
    for (const c of this.o.containers()) if (c.Id !== rec.Id) for (const p of c.Net?.Ports ?? []) taken.add(`${p.Protocol}/${p.HostPort}`);
    for (const [key, list] of Object.entries(bindings)) {
      const m = /^(\d+)(?:\/(tcp|udp|sctp))?$/.exec(key);
      if (!m) throw invalid(`invalid port specification: "${key}"`);
      const proto = (m[2] ?? 'tcp') as 'tcp' | 'udp';
      if ((m[2] as string) === 'sctp') throw invalid('sctp ports are not supported');
      for (const b of list ?? []) {
        const hostIp = b.HostIp || '0.0.0.0';
        const [lo, hi] = (b.HostPort || '0').split('-').map(Number) as [number, number | undefined];
        if (!Number.isInteger(lo) || lo < 0 || lo > 65535 || (hi !== undefined && (!Number.isInteger(hi) || hi < lo || hi > 65535))) throw invalid(`invalid host port: ${b.HostPort}`);
        let hostPort = lo;
        let err: string | undefined;
        if (hostPort === 0) hostPort = await freePort(hostIp, proto);
        else {
          // a host port range for one container port: the first free one in it, as Docker does
          for (let p = lo; p <= (hi ?? lo); p++) {
            hostPort = p;
            err = taken.has(`${proto}/${p}`) ? 'port is already allocated' : await tryBind(hostIp, p, proto);
            if (!err) break;
          }
        }
        if (err) throw conflict(`driver failed programming external connectivity on endpoint ${rec.Name}: Bind for ${hostIp}:${hostPort} failed: ${err}`);
        taken.add(`${proto}/${hostPort}`);
        out.push({ HostIp: hostIp, HostPort: hostPort, ContainerPort: Number(m[1]), Protocol: proto });
      }
    }
    return out;
  }

  /**
   * Before runc create: the container's named network namespace with an endpoint on each of its networks.
   * Returns the namespace path for the OCI spec, or undefined where the engine makes no namespace (none, host, container:).
   */
  async attach(rec: ContainerRecord): Promise<ContainerNet | undefined> {
    const names = this.wanted(rec);
    if (!names.length) return undefined;
    const nets = names.map((nm) => this.get(nm));
    const ports = await this.planPorts(rec);
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
    const ip = epConf?.IPAMConfig?.IPv4Address || undefined;
    if (ip) {
      // Docker refuses --ip on the default network
      if (n.Name === DEFAULT_NETWORK) throw invalid('user specified IP address is supported on user defined networks only');
      if (!contains(parseCidr(n.IPAM.Config[0]!.Subnet), ip)) throw invalid(`no configured subnet or ip-range contain the IP address ${ip}`);
      const holder = this.o.containers().find((c) => c.Id !== rec.Id && c.Net?.Endpoints[n.Name]?.IPAddress === ip);
      if (holder) throw conflict(`Address already in use: ${ip} is used by container ${holder.Name}`);
    }
    const mac = epConf?.MacAddress || undefined;
    checkMac(mac);
    const runtimeConfig = ports.length ? { portMappings: ports.map((p) => ({ hostPort: p.HostPort, containerPort: p.ContainerPort, protocol: p.Protocol, hostIP: p.HostIp === '0.0.0.0' ? '' : p.HostIp })) } : undefined;
    let result: CniResult;
    try {
      result = await this.cni.add(this.confList(n, ip, !!runtimeConfig, mac), { containerId: rec.Id, netns: netnsPath, ifname, runtimeConfig });
    } catch (err) {
      const msg = errorMessage(err);
      if (ip && /already allocated|requested IP address/.test(msg)) throw conflict(`Address already in use: ${ip}`);
      throw invalid(`failed to set up network ${n.Name} for container ${rec.Name}: ${msg}`);
    }
    // published ports reach the container from the host's loopback too
    if (ports.some((p) => p.HostIp === '0.0.0.0' || p.HostIp.startsWith('127.'))) {
      await fs.writeFile(`/proc/sys/net/ipv4/conf/${n.BridgeName}/route_localnet`, '1').catch(() => undefined);
    }
    await this.ensureDns(n);
    const ipc = result.ips?.[0];
    const [addr, prefix] = (ipc?.address ?? '/0').split('/');
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
      IPAMConfig: ip ? { IPv4Address: ip } : null,
      IfName: ifname,
    };
  }

  /** docker network connect: configured for the next start, and attached now if the container runs. */
  async connect(rec: ContainerRecord, ref: string, settings: EndpointSettings): Promise<void> {
    const n = this.get(ref);
    if (rec.Net?.Endpoints[n.Name] || this.wanted(rec).includes(n.Name)) throw conflict(`endpoint with name ${rec.Name} already exists in network ${n.Name}`);
    const mode = rec.HostConfig.NetworkMode;
    if (mode === 'host' || mode === 'none' || mode.startsWith('container:')) throw invalid(`container cannot be disconnected from host network or connected to host network`);
    const ip = settings.IPAMConfig?.IPv4Address;
    if (ip && n.Name === DEFAULT_NETWORK) throw invalid('user specified IP address is supported on user defined networks only');
    rec.NetworkingConfig ??= {};
    rec.NetworkingConfig.EndpointsConfig ??= {};
    if (rec.Net && (rec.State.Status === 'running' || rec.State.Status === 'paused')) {
      const used = new Set(Object.values(rec.Net.Endpoints).map((e) => e.IfName));
      let i = 0;
      while (used.has(`eth${i}`)) i++;
      rec.Net.Endpoints[n.Name] = await this.attachOne(rec, n, `eth${i}`, rec.Net.Netns, settings, []);
    }
    rec.NetworkingConfig.EndpointsConfig[n.Name] = { IPAMConfig: settings.IPAMConfig ?? null, Aliases: settings.Aliases ?? null };
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

  /** Names on a user network: the running containers' names, short ids and aliases. */
  private lookup(n: NetworkRecord, name: string): string[] {
    const out: string[] = [];
    for (const c of this.o.containers()) {
      const ep = c.Net?.Endpoints[n.Name];
      if (!ep?.IPAddress || (c.State.Status !== 'running' && c.State.Status !== 'paused')) continue;
      if (ep.DNSNames.some((d) => d.toLowerCase() === name || `${d.toLowerCase()}.${n.Name.toLowerCase()}` === name)) out.push(ep.IPAddress);
    }
    return out;
  }

  /** Once the bridge holds the gateway address: the network's DNS responder listens there (user networks). */
  private async ensureDns(n: NetworkRecord): Promise<void> {
    if (n.Name === DEFAULT_NETWORK || this.dns.get(n.Id)?.listening) return;
    const gw = n.IPAM.Config[0]!.Gateway;
    const r = new DnsResponder(gw, (name) => this.lookup(n, name));
    try {
      await r.start();
      this.dns.set(n.Id, r);
    } catch (err) {
      this.o.log.warn({ network: n.Name, address: gw, err: errorMessage(err) }, 'embedded DNS not available; names resolve through /etc/hosts only');
    }
  }

  /** After an engine restart: responders again for the networks whose containers kept running. */
  async resumeDns(): Promise<void> {
    for (const n of this.nets.values()) {
      if (this.o.containers().some((c) => c.Net?.Endpoints[n.Name] && c.State.Status === 'running')) await this.ensureDns(n);
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
    const n = this.find(ep.NetworkID);
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
    for (const [name, ep] of Object.entries(state.Endpoints)) {
      // where the network's DNS responder runs, it answers (and never goes stale); hosts entries are the fallback
      if (name === DEFAULT_NETWORK || this.dns.get(ep.NetworkID)?.listening) continue;
      for (const c of this.o.containers()) {
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
      for (const c of this.o.containers()) {
        if (c.Id === rec.Id || !c.Net?.Endpoints[name] || c.State.Status !== 'running') continue;
        await fs.appendFile(hostsPathOf(c.Id), `${ep.IPAddress}\t${[...new Set(ep.DNSNames)].join(' ')}\n`).catch(() => undefined);
      }
    }
  }
}

export interface EndpointSettings {
  IPAMConfig?: { IPv4Address?: string } | null;
  Aliases?: string[] | null;
  /** --mac-address (the docker CLI puts it on the first network's endpoint). */
  MacAddress?: string;
}

function checkMac(mac: string | undefined): void {
  if (mac && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) throw invalid(`invalid MAC address: ${mac}`);
}

function tryBind(host: string, port: number, proto: 'tcp' | 'udp'): Promise<string | undefined> {
  return new Promise((resolve) => {
    if (proto === 'udp') {
      const s = dgram.createSocket('udp4');
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'EADDRINUSE' ? 'port is already allocated' : e.message));
      s.bind(port, host, () => s.close(() => resolve(undefined)));
      return;
    }
    const s = net.createServer();
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'EADDRINUSE' ? 'port is already allocated' : e.message));
    s.listen({ port, host, exclusive: true }, () => s.close(() => resolve(undefined)));
  });
}

function freePort(host: string, proto: 'tcp' | 'udp'): Promise<number> {
  return new Promise((resolve, reject) => {
    if (proto === 'udp') {
      const s = dgram.createSocket('udp4');
      s.once('error', reject);
      s.bind(0, host, () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
      return;
    }
    const s = net.createServer();
    s.once('error', reject);
    s.listen({ port: 0, host }, () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

export { ipToInt };
