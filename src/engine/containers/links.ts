import { conflict, errorMessage, invalid } from '../../lib/errors.js';
import type { ContainerRecord } from './model.js';

/** A legacy link (`--link NAME[:ALIAS]`): the running container it names, and the alias it is known by. */
export interface Link {
  target: ContainerRecord;
  alias: string;
  ip: string;
}

/** Names in a link spec: "db", "db:alias", or Docker's stored "/db:/web/alias". */
function parseSpec(spec: string): { name: string; alias: string } {
  const [name = '', alias] = spec.split(':');
  const clean = name.replace(/^\//, '');
  if (!clean) throw invalid(`invalid link: ${JSON.stringify(spec)}`);
  return { name: clean, alias: (alias ?? clean).split('/').pop() || clean };
}

/**
 * Check a create request's links: each names a container that exists. A missing one is a bad parameter, not a 404:
 * Docker's clients take a 404 on create for a missing image and would try to pull it.
 */
export function checkLinks(specs: string[] | null | undefined, get: (ref: string) => ContainerRecord): void {
  for (const s of specs ?? []) {
    const { name } = parseSpec(s);
    try {
      get(name);
    } catch (err) {
      throw invalid(`could not get container for ${name}: ${errorMessage(err)}`);
    }
  }
}

/** The link among `specs` that is known by `alias`: its spec and the name of the container it links to. */
export function linkByAlias(specs: string[] | null | undefined, alias: string): { spec: string; name: string } | undefined {
  for (const spec of specs ?? []) {
    const p = parseSpec(spec);
    if (p.alias === alias) return { spec, name: p.name };
  }
  return undefined;
}

/** Resolve the links for a start: each target must run, and has an address on a network. */
export function resolveLinks(self: ContainerRecord, get: (ref: string) => ContainerRecord): Link[] {
  return (self.HostConfig.Links ?? []).map((spec) => {
    const { name, alias } = parseSpec(spec);
    const target = get(name);
    if (target.State.Status !== 'running' && target.State.Status !== 'paused') throw conflict(`Cannot link to a non running container: /${target.Name} AS /${self.Name}/${alias}`);
    const ip = Object.values(target.Net?.Endpoints ?? {})[0]?.IPAddress ?? '';
    return { target, alias, ip };
  });
}

/** /etc/hosts lines: "IP alias id name" (Docker's order). */
export function linkHosts(links: Link[]): string[] {
  return links.filter((l) => l.ip).map((l) => [l.ip, ...new Set([l.alias, l.target.Id.slice(0, 12), l.target.Name])].join('\t'));
}

/** Docker's link variables: ALIAS_NAME, ALIAS_ENV_*, and ALIAS_PORT* for each port the target exposes. */
export function linkEnv(self: ContainerRecord, links: Link[]): string[] {
  const out: string[] = [];
  for (const l of links) {
    const p = l.alias.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
    out.push(`${p}_NAME=/${self.Name}/${l.alias}`);
    for (const kv of l.target.Config.Env ?? []) {
      const i = kv.indexOf('=');
      // a "KEY" alone (an unset variable) has no value to pass on
      if (i > 0 && !['HOME', 'PATH', 'HOSTNAME'].includes(kv.slice(0, i))) out.push(`${p}_ENV_${kv}`);
    }
    if (!l.ip) continue;
    const ports = Object.keys(l.target.Config.ExposedPorts ?? {})
      .map((k) => {
        const [port = '', proto = 'tcp'] = k.split('/');
        return { port: Number(port), proto };
      })
      .sort((a, b) => a.port - b.port || a.proto.localeCompare(b.proto));
    if (ports[0]) out.push(`${p}_PORT=${ports[0].proto}://${l.ip}:${ports[0].port}`);
    for (const { port, proto } of ports) {
      const v = `${p}_PORT_${port}_${proto.toUpperCase()}`;
      out.push(`${v}=${proto}://${l.ip}:${port}`, `${v}_ADDR=${l.ip}`, `${v}_PORT=${port}`, `${v}_PROTO=${proto}`);
    }
  }
  return out;
}
