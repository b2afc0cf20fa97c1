import net from 'node:net';
import dgram from 'node:dgram';
import { conflict, invalid } from '../../lib/errors.js';
import type { ContainerRecord } from '../containers/model.js';
import type { PortMapping } from './model.js';

/** -p and -P: the host ports to map, with -P's random ports chosen now; a port already taken is a clear error. */
export async function planPorts(rec: ContainerRecord, containers: ContainerRecord[]): Promise<PortMapping[]> {
  const out: PortMapping[] = [];
  const bindings = { ...(rec.HostConfig.PortBindings ?? {}) };
  if (rec.HostConfig.PublishAllPorts) for (const p of Object.keys(rec.Config.ExposedPorts ?? {})) if (!bindings[p]?.length) bindings[p] = [{ HostIp: '', HostPort: '' }];
  const taken = new Set<string>();
  for (const c of containers) if (c.Id !== rec.Id) for (const p of c.Net?.Ports ?? []) taken.add(`${p.Protocol}/${p.HostPort}`);
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
