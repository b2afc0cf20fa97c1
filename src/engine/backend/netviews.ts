import type { ContainerRecord } from '../containers/model.js';
import type { EndpointView, Port, PortMap } from '../../lib/docker-types.js';
import { wantedNetworks } from '../network/service.js';

/** Docker's view of a container's networks: configured ones, with the live endpoint's addresses while it runs. */
export function containerNetworks(r: ContainerRecord): Record<string, EndpointView> {
  const mode = r.HostConfig.NetworkMode;
  if (mode.startsWith('container:')) return {};
  const names = mode === 'host' || mode === 'none' ? [mode] : wantedNetworks(r);
  const out: Record<string, EndpointView> = {};
  for (const name of new Set([...names, ...Object.keys(r.Net?.Endpoints ?? {})])) {
    const ep = r.Net?.Endpoints[name];
    const conf = r.NetworkingConfig?.EndpointsConfig?.[name];
    out[name] = {
      IPAMConfig: conf?.IPAMConfig ?? null,
      Links: conf?.Links?.length ? conf.Links : null,
      Aliases: ep?.Aliases ?? conf?.Aliases ?? null,
      MacAddress: ep?.MacAddress ?? conf?.MacAddress ?? '',
      DriverOpts: conf?.DriverOpts && Object.keys(conf.DriverOpts).length ? conf.DriverOpts : null,
      NetworkID: ep?.NetworkID ?? '',
      EndpointID: ep?.EndpointID ?? '',
      Gateway: ep?.Gateway ?? '',
      IPAddress: ep?.IPAddress ?? '',
      IPPrefixLen: ep?.IPPrefixLen ?? 0,
      IPv6Gateway: ep?.IPv6Gateway ?? '',
      GlobalIPv6Address: ep?.GlobalIPv6Address ?? '',
      GlobalIPv6PrefixLen: ep?.GlobalIPv6PrefixLen ?? 0,
      DNSNames: ep?.DNSNames.length ? ep.DNSNames : null,
    };
  }
  return out;
}

/** NetworkSettings.Ports: every exposed or published port, with its host bindings (null when not published). */
export function portMap(r: ContainerRecord): PortMap {
  const out: PortMap = {};
  for (const p of Object.keys(r.Config.ExposedPorts ?? {})) out[p.includes('/') ? p : `${p}/tcp`] = null;
  for (const p of r.Net?.Ports ?? []) {
    const key = `${p.ContainerPort}/${p.Protocol}`;
    (out[key] ??= []).push({ HostIp: p.HostIp, HostPort: String(p.HostPort) });
  }
  return out;
}

/** The Ports of `docker ps`. */
export function portSummary(r: ContainerRecord): Port[] {
  const out: Port[] = [];
  const published = new Set<string>();
  for (const p of r.Net?.Ports ?? []) {
    published.add(`${p.ContainerPort}/${p.Protocol}`);
    out.push({ IP: p.HostIp, PrivatePort: p.ContainerPort, PublicPort: p.HostPort, Type: p.Protocol });
  }
  for (const k of Object.keys(r.Config.ExposedPorts ?? {})) {
    const [port, proto = 'tcp'] = k.split('/');
    if (!published.has(`${port}/${proto}`)) out.push({ PrivatePort: Number(port), Type: proto });
  }
  return out;
}

/** The top-level (default network's) fields of NetworkSettings. */
export function primaryEndpoint(r: ContainerRecord): { IPAddress: string; IPPrefixLen: number; Gateway: string; MacAddress: string; EndpointID: string; SandboxKey: string } {
  const ep = r.Net ? Object.values(r.Net.Endpoints)[0] : undefined;
  return { IPAddress: ep?.IPAddress ?? '', IPPrefixLen: ep?.IPPrefixLen ?? 0, Gateway: ep?.Gateway ?? '', MacAddress: ep?.MacAddress ?? '', EndpointID: ep?.EndpointID ?? '', SandboxKey: r.Net?.Netns ?? '' };
}
