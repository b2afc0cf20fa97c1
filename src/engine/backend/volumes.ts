/** The Docker API's volumes backend over this host's volume service. */
import type { Filters, VolumeBackend } from '../../docker-api/index.js';
import type { Volume } from '../../lib/docker-types.js';
import { invalid } from '../../lib/errors.js';
import type { Engine } from '../engine.js';
import { labelMatch } from '../images/service.js';

export class EngineVolumes implements VolumeBackend {
  constructor(private readonly e: Engine) {}

  async list(f: Filters) {
    const svc = this.e.volumes;
    let vols = await svc.list();
    for (const [k, vals] of f) {
      if (k === 'name') vols = vols.filter((v) => vals.some((x) => v.Name.includes(x)));
      else if (k === 'label') vols = vols.filter((v) => vals.every((x) => labelMatch(v.Labels, x)));
      else if (k === 'dangling') vols = vols.filter((v) => (svc.inUse(v.Name).length === 0) === vals.some((x) => x === 'true' || x === '1'));
      else if (k === 'driver') vols = vols.filter((v) => vals.includes(v.Driver));
      else throw invalid(`invalid filter '${k}'`);
    }
    return { Volumes: vols as Volume[], Warnings: [] };
  }

  async create(raw: unknown) {
    const b = (raw ?? {}) as { Name?: string; Driver?: string; DriverOpts?: Record<string, string>; Labels?: Record<string, string> };
    if (typeof b !== 'object' || Array.isArray(b)) throw invalid('invalid volume create body');
    return (await this.e.volumes.create(b.Name || undefined, { labels: b.Labels ?? {}, driverOpts: b.DriverOpts ?? {}, driver: b.Driver || undefined })) as Volume;
  }

  async prune(f: Filters) {
    const all = (f.get('all') ?? []).some((v) => v === 'true' || v === '1');
    const labels = f.get('label') ?? [];
    return this.e.volumes.prune(all, (l) => labels.every((x) => labelMatch(l, x)));
  }

  async inspect(name: string) {
    return (await this.e.volumes.get(name)) as Volume;
  }

  remove(name: string, force: boolean): Promise<void> {
    return this.e.volumes.remove(name, force);
  }
}
