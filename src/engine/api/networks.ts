import { createHash } from 'node:crypto';
import type { Router } from './http.js';
import type { Engine } from '../engine.js';
import { conflict, invalid, notFound } from '../../lib/errors.js';
import type { NetworkRecord, EndpointSettings } from '../network/model.js';

function labelOk(labels: Record<string, string>, f: string): boolean {
  const i = f.indexOf('=');
  return i < 0 ? f in labels : labels[f.slice(0, i)] === f.slice(i + 1);
}

/** Docker's network API on the engine's CNI networks; host and none are pre-defined and not stored. */
export function networkRoutes(r: Router, e: Engine): void {
  const svc = e.networks;
  const fixedId = (name: string) => createHash('sha256').update(`${e.engineId}/${name}`).digest('hex');
  const predefined = (): Array<Record<string, unknown>> =>
    ['host', 'none'].map((name) => ({
      Name: name, Id: fixedId(name), Created: '0001-01-01T00:00:00Z', Scope: 'local', Driver: name === 'none' ? 'null' : 'host', EnableIPv6: false,
      IPAM: { Driver: 'default', Options: null, Config: [] }, Internal: false, Attachable: false, Ingress: false, ConfigFrom: { Network: '' }, ConfigOnly: false,
      Containers: {}, Options: {}, Labels: {},
    }));

  const view = (n: NetworkRecord, withContainers: boolean): Record<string, unknown> => {
    const containers: Record<string, unknown> = {};
    if (withContainers) {
      for (const c of e.containers.list()) {
        const ep = c.Net?.Endpoints[n.Name];
        if (!ep) continue;
        containers[c.Id] = { Name: c.Name, EndpointID: ep.EndpointID, MacAddress: ep.MacAddress, IPv4Address: `${ep.IPAddress}/${ep.IPPrefixLen}`, IPv6Address: ep.GlobalIPv6Address ? `${ep.GlobalIPv6Address}/${ep.GlobalIPv6PrefixLen}` : '' };
      }
    }
    return {
      Name: n.Name, Id: n.Id, Created: n.Created, Scope: n.Scope, Driver: n.Driver, EnableIPv6: n.EnableIPv6, IPAM: n.IPAM, Internal: n.Internal,
      Attachable: n.Attachable, Ingress: n.Ingress, ConfigFrom: { Network: '' }, ConfigOnly: false, Containers: containers,
      Options: n.Options, Labels: n.Labels,
    };
  };

  const findAny = (ref: string): Record<string, unknown> => {
    const n = svc.find(ref);
    if (n) return view(n, true);
    const p = predefined().find((x) => x.Name === ref || x.Id === ref || (ref.length >= 3 && String(x.Id).startsWith(ref)));
    if (p) return p;
    throw notFound(`network ${ref} not found`);
  };

  r.add('GET', '/networks', (ctx) => {
    const f = ctx.filters();
    let list = [...svc.list().map((n) => view(n, false)), ...predefined()];
    for (const [k, vals] of f) {
      list = list.filter((n) => {
        switch (k) {
          case 'name':
            return vals.some((v) => String(n.Name).includes(v));
          case 'id':
            return vals.some((v) => String(n.Id).startsWith(v));
          case 'driver':
            return vals.includes(String(n.Driver));
          case 'label':
            return vals.every((v) => labelOk((n.Labels ?? {}) as Record<string, string>, v));
          case 'type':
            return vals.some((v) => (v === 'builtin') === ['bridge', 'host', 'none'].includes(String(n.Name)));
          case 'scope':
            return vals.includes('local');
          case 'dangling':
            return true;
          default:
            throw invalid(`invalid filter '${k}'`);
        }
      });
    }
    ctx.send(200, list);
  });

  r.add('GET', '/networks/{id}', (ctx) => ctx.send(200, findAny(ctx.param('id'))));

  r.add('POST', '/networks/create', async (ctx) => {
    const body = (await ctx.json<Parameters<typeof svc.create>[0]>()) ?? {};
    if (body.Name === 'host' || body.Name === 'none') throw conflict(`network with name ${body.Name} already exists`);
    ctx.send(201, await svc.create(body));
  });

  r.add('DELETE', '/networks/{id}', async (ctx) => {
    const ref = ctx.param('id');
    if (!svc.find(ref) && predefined().some((x) => x.Name === ref || x.Id === ref)) throw conflict(`${ref} is a pre-defined network and cannot be removed`);
    await svc.remove(ref);
    ctx.send(204);
  });

  r.add('POST', '/networks/prune', async (ctx) => {
    const f = ctx.filters();
    const labels = f.get('label') ?? [];
    const gone = labels.length ? [] : await svc.prune();
    if (labels.length) {
      for (const n of svc.list()) {
        if (n.Name === 'bridge' || !labels.every((l) => labelOk(n.Labels, l))) continue;
        if (svc.users(n).length) continue;
        await svc.remove(n.Id).then(() => gone.push(n.Name), () => undefined);
      }
    }
    ctx.send(200, { NetworksDeleted: gone });
  });

  r.add('POST', '/networks/{id}/connect', async (ctx) => {
    const body = (await ctx.json<{ Container?: string; EndpointConfig?: EndpointSettings | null }>()) ?? {};
    if (!body.Container) throw invalid('no container given');
    const ref = ctx.param('id');
    if (!svc.find(ref)) findAny(ref); // 404, or a pre-defined network:
    if (!svc.find(ref)) throw invalid(`container cannot be disconnected from host network or connected to host network`);
    await e.containers.mutate(body.Container, (rec) => svc.connect(rec, ref, body.EndpointConfig ?? {}));
    ctx.send(200);
  });

  r.add('POST', '/networks/{id}/disconnect', async (ctx) => {
    const body = (await ctx.json<{ Container?: string; Force?: boolean }>()) ?? {};
    if (!body.Container) throw invalid('no container given');
    const ref = ctx.param('id');
    if (!svc.find(ref)) findAny(ref);
    if (!svc.find(ref)) throw invalid(`container cannot be disconnected from host network or connected to host network`);
    await e.containers.mutate(body.Container, (rec) => svc.disconnect(rec, ref));
    ctx.send(200);
  });
}
