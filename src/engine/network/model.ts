/** The network records the engine keeps (per network, and per container in its record). */
import { isIPv6 } from './ipnet.js';

/** Docker's default network, which every container without a NetworkMode joins. */
export const DEFAULT_NETWORK = 'bridge';

/** The network's IPv6 subnet, where it has IPv6 addresses (EnableIPv6 with an IPv6 subnet). */
export function ipv6Config(n: NetworkRecord): IpamConfig | undefined {
  return n.EnableIPv6 ? n.IPAM.Config.find((c) => isIPv6(c.Subnet)) : undefined;
}

/** One subnet of a network (the IPv4 one first, then the IPv6 one), as Docker's inspect shows it. */
export interface IpamConfig {
  Subnet: string;
  Gateway: string;
  IPRange?: string;
  /** Addresses kept out of the pool (docker network create --aux-address NAME=IP). */
  AuxiliaryAddresses?: Record<string, string>;
}

export interface NetworkRecord {
  Name: string;
  Id: string;
  Created: string;
  /** `swarm` and `overlay` for a cluster network (what the docker CLI shows for swarm networks), whose record the manager's `networks` keep. */
  Scope: 'local' | 'swarm';
  Driver: 'bridge' | 'overlay';
  EnableIPv6: boolean;
  IPAM: { Driver: string; Options: Record<string, string> | null; Config: IpamConfig[] };
  Internal: boolean;
  Attachable: boolean;
  Ingress: boolean;
  Options: Record<string, string>;
  Labels: Record<string, string>;
  /** The Linux bridge behind it. */
  BridgeName: string;
  /** A cluster network's routing and the blocks of its subnet this host holds. */
  Cluster?: ClusterInfo;
}

export interface ClusterInfo {
  routing: 'host-gw' | 'vxlan';
  vni: number;
  /** The containers' MTU as the manager gives it (0: the uplink's, less VXLAN's 50 bytes with vxlan). */
  mtu: number;
  /** This host's blocks (kept while a container may still use one; their gateways are on the bridge). */
  blocks: string[];
}

/** A cluster network (its record comes from the manager, its addresses too). */
export const isCluster = (n: NetworkRecord): boolean => n.Driver === 'overlay';

export interface Endpoint {
  NetworkID: string;
  EndpointID: string;
  IPAddress: string;
  IPPrefixLen: number;
  Gateway: string;
  MacAddress: string;
  Aliases: string[] | null;
  DNSNames: string[];
  IPAMConfig: { IPv4Address?: string; IPv6Address?: string } | null;
  IfName: string;
  /** On an IPv6 network (absent in records from before IPv6). */
  GlobalIPv6Address?: string;
  GlobalIPv6PrefixLen?: number;
  IPv6Gateway?: string;
  /** "NAME[:ALIAS]": names this container alone resolves on the network, as Docker's links on user networks. */
  Links?: string[] | null;
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

export interface EndpointSettings {
  IPAMConfig?: { IPv4Address?: string; IPv6Address?: string } | null;
  Aliases?: string[] | null;
  /** "NAME[:ALIAS]" on a user network: the alias resolves to that container for this one only. */
  Links?: string[] | null;
  /** Kept and shown, as Docker does for the bridge driver, which reads none of them. */
  DriverOpts?: Record<string, string> | null;
  /** --mac-address (the docker CLI puts it on the first network's endpoint). */
  MacAddress?: string;
}
