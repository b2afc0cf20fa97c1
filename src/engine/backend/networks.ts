/** The Docker API's networks backend over this host's CNI networks; host and none are pre-defined and not stored. */
import { createHash } from 'node:crypto';
import type { Filters, NetworkBackend } from '../../docker-api/index.js';
import type { NetworkContainer, NetworkResource } from '../../lib/docker-types.js';
import { conflict, invalid, notFound } from '../../lib/errors.js';
import type { Engine } from '../engine.js';
import type { NetworkRecord, EndpointSettings } from '../network/model.js';
import type { NetworkService } from '../network/service.js';

function labelOk(labels: Record<string, string>, f: string): boolean {
  const i = f.indexOf('=');
  return i < 0 ? f in labels : labels[f.slice(0, i)] === f.slice(i + 1);
}

const asObject = <T>(body: unknown): T => (body && typeof body === 'object' && !Array.isArray(body) ? body : {}) as T;

export class EngineNetworks implements NetworkBackend {
  constructor(private readonly e: Engine) {}

  private get svc(): NetworkService {
    return this.e.networks;
  }

  private fixedId(name: string): string {
    return createHash('sha256').update(`${this.e.engineId}/${name}`).digest('hex');
  }

  private predefined(): NetworkResource[] {
    return ['host', 'none'].map((name) => ({
      Name: name, Id: this.fixedId(name), Created: '0001-01-01T00:00:00Z', Scope: 'local', Driver: name === 'none' ? 'null' : 'host', EnableIPv6: false,
      IPAM: { Driver: 'default', Options: null, Config: [] }, Internal: false, Attachable: false, Ingress: false, ConfigFrom: { Network: '' }, ConfigOnly: false,
      Containers: {}, Options: {}, Labels: {},
    }));
  }

  private view(n: NetworkRecord, withContainers: boolean): NetworkResource {
    const containers: Record<string, NetworkContainer> = {};
    if (withContainers) {
      for (const c of this.e.containers.list()) {
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
  }

  private findAny(ref: string): NetworkResource {
    const n = this.svc.find(ref);
    if (n) return this.view(n, true);
    const p = this.predefined().find((x) => x.Name === ref || x.Id === ref || (ref.length >= 3 && x.Id.startsWith(ref)));
    if (p) return p;
    throw notFound(`network ${ref} not found`);
  }

  async list(f: Filters): Promise<NetworkResource[]> {
    let list = [...this.svc.list().map((n) => this.view(n, false)), ...this.predefined()];
    for (const [k, vals] of f) {
      list = list.filter((n) => {
        switch (k) {
          case 'name':
            return vals.some((v) => n.Name.includes(v));
          case 'id':
            return vals.some((v) => n.Id.startsWith(v));
          case 'driver':
            return vals.includes(n.Driver);
          case 'label':
            return vals.every((v) => labelOk(n.Labels ?? {}, v));
          case 'type':
            return vals.some((v) => (v === 'builtin') === ['bridge', 'host', 'none'].includes(n.Name));
          case 'scope':
            return vals.includes('local');
          case 'dangling':
            return true;
          default:
            throw invalid(`invalid filter '${k}'`);
        }
      });
    }
    return list;
  }

  async inspect(id: string): Promise<NetworkResource> {
    return this.findAny(id);
  }

  async create(raw: unknown) {
    const body = asObject<Parameters<NetworkService['create']>[0]>(raw);
    if (body.Name === 'host' || body.Name === 'none') throw conflict(`network with name ${body.Name} already exists`);
    return this.svc.create(body);
  }

  async remove(ref: string): Promise<void> {
    if (!this.svc.find(ref) && this.predefined().some((x) => x.Name === ref || x.Id === ref)) throw conflict(`${ref} is a pre-defined network and cannot be removed`);
    await this.svc.remove(ref);
  }

  async prune(f: Filters): Promise<{ NetworksDeleted: string[] }> {
    const labels = f.get('label') ?? [];
    const gone = labels.length ? [] : await this.svc.prune();
    if (labels.length) {
      for (const n of this.svc.list()) {
        if (n.Name === 'bridge' || !labels.every((l) => labelOk(n.Labels, l))) continue;
        if (this.svc.users(n).length) continue;
        await this.svc.remove(n.Id).then(() => gone.push(n.Name), () => undefined);
      }
    }
    return { NetworksDeleted: gone };
  }

  /** Host and none take no connections: a 404 for an unknown network, else Docker's refusal. */
  private connectable(ref: string): void {
    if (this.svc.find(ref)) return;
    this.findAny(ref);
    throw invalid(`container cannot be disconnected from host network or connected to host network`);
  }

  async connect(ref: string, raw: unknown): Promise<void> {
    const body = asObject<{ Container?: string; EndpointConfig?: EndpointSettings | null }>(raw);
    if (!body.Container) throw invalid('no container given');
    this.connectable(ref);
    await this.e.containers.mutate(body.Container, (rec) => this.svc.connect(rec, ref, body.EndpointConfig ?? {}));
  }

  async disconnect(ref: string, raw: unknown): Promise<void> {
    const body = asObject<{ Container?: string; Force?: boolean }>(raw);
    if (!body.Container) throw invalid('no container given');
    this.connectable(ref);
    await this.e.containers.mutate(body.Container, (rec) => this.svc.disconnect(rec, ref));
  }
}
