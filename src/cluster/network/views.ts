/** Cluster networks in the Docker API's words: `network create`'s body checked, and the records `ls`/`inspect` show. */
import type { NetworkResource } from '../../lib/docker-types.js';
import { invalid } from '../../lib/errors.js';
import { parseCidr } from './ipam.js';
import type { ClusterNetwork } from './networks.js';

export const ROUTING_OPTION = 'com.sampan.routing';
const CLUSTER_DRIVERS = ['sampan-cluster', 'overlay'];
/** The engines' own networks of these names: a cluster network may not take them. */
const PREDEFINED = ['bridge', 'host', 'none', 'default'];
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** `POST /networks/create` through the manager: cluster networks only (a local network is an engine's own). */
export function clusterNetworkRequest(b: unknown): { name: string; subnet?: string; routing?: 'host-gw' | 'vxlan'; internal: boolean; labels: Record<string, string> } {
  const r = (b ?? {}) as { Name?: unknown; Driver?: string; Internal?: boolean; EnableIPv6?: boolean; IPAM?: { Config?: Array<{ Subnet?: string; Gateway?: string; IPRange?: string }> }; Options?: Record<string, string>; Labels?: Record<string, string> };
  if (typeof r.Name !== 'string' || !NAME.test(r.Name)) throw invalid(`invalid network name ${JSON.stringify(r.Name ?? '')}: [a-zA-Z0-9][a-zA-Z0-9_.-]*`);
  if (PREDEFINED.includes(r.Name)) throw invalid(`${r.Name} is a pre-defined network and cannot be created`);
  const driver = r.Driver || 'bridge';
  if (driver === 'bridge') throw invalid('local networks are made on an engine (docker -H ENGINE network create); through the cluster manager, -d sampan-cluster (or -d overlay) makes a cluster network');
  if (!CLUSTER_DRIVERS.includes(driver)) throw invalid(`network driver ${driver} is not supported by the cluster manager: use -d sampan-cluster (or -d overlay)`);
  if (r.EnableIPv6) throw invalid('cluster networks are IPv4 only');
  const configs = r.IPAM?.Config ?? [];
  if (configs.length > 1) throw invalid('a cluster network has one subnet');
  const c = configs[0];
  if (c?.Gateway || c?.IPRange) throw invalid('--gateway and --ip-range are not supported on a cluster network: each host is the gateway of its blocks');
  if (c?.Subnet) parseCidr(c.Subnet);
  const routing = r.Options?.[ROUTING_OPTION];
  if (routing !== undefined && routing !== 'host-gw' && routing !== 'vxlan') throw invalid(`option ${ROUTING_OPTION}: host-gw or vxlan`);
  return { name: r.Name, ...(c?.Subnet && { subnet: c.Subnet }), ...(routing && { routing }), internal: !!r.Internal, labels: r.Labels ?? {} };
}

/** Docker's record of a swarm-scoped network; `containers`: [id, name, ip] (inspect; ls shows none). */
export function networkView(n: ClusterNetwork, containers: Array<[string, string, string]>): NetworkResource {
  const prefix = n.ipam.subnet.prefix;
  return {
    Name: n.spec.name, Id: n.spec.id, Created: n.created, Scope: 'swarm', Driver: 'overlay', EnableIPv6: false,
    IPAM: { Driver: 'default', Options: null, Config: [{ Subnet: n.spec.subnet }] },
    Internal: n.spec.internal, Attachable: true, Ingress: false, ConfigFrom: { Network: '' }, ConfigOnly: false,
    Containers: Object.fromEntries(containers.map(([id, name, ip]) => [id, { Name: name, EndpointID: '', MacAddress: '', IPv4Address: `${ip}/${prefix}`, IPv6Address: '' }])),
    Options: { [ROUTING_OPTION]: n.spec.routing, 'com.docker.network.driver.overlay.vxlanid_list': String(n.spec.vni), 'com.docker.network.driver.mtu': String(n.spec.mtu) },
    Labels: n.spec.labels,
  };
}

/** Docker's network filters: name and id (patterns), driver, scope, type, label. */
export function networkMatches(v: NetworkResource, filters: Map<string, string[]>): boolean {
  for (const [k, vals] of filters) {
    if (!vals.length) continue;
    const ok = {
      name: () => vals.some((p) => new RegExp(p).test(v.Name)),
      id: () => vals.some((p) => new RegExp(p).test(v.Id)),
      driver: () => vals.includes(v.Driver) || vals.includes('sampan-cluster'),
      scope: () => vals.includes(v.Scope),
      type: () => vals.includes('custom'),
      label: () => vals.every((l) => {
        const [key, val] = l.split('=', 2) as [string, string | undefined];
        return key in v.Labels && (val === undefined || v.Labels[key] === val);
      }),
    }[k];
    if (!ok) throw invalid(`invalid filter '${k}'`);
    if (!ok()) return false;
  }
  return true;
}
