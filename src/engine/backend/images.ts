/** The Docker API's images backend over this host's image store (docker images/pull/push/load/save/import/tag/rmi). */
import type { Readable } from 'node:stream';
import type { Filters, ImageBackend, ImportOptions, Output, PullOptions, RegistryAuth } from '../../docker-api/index.js';
import { invalid } from '../../lib/errors.js';
import { sendStream } from '../../lib/streams.js';
import type { Engine } from '../engine.js';
import { loadArchive } from '../images/load.js';
import { prepareSave } from '../images/save.js';
import { importRootfs } from '../images/import.js';
import { imageHistory, imageInspect, imageSummary } from './views.js';

/** The registry client is a good share of the engine's code: it loads with the first pull, push or login. */
const registry = () => import('./registry.js');

export class EngineImages implements ImageBackend {
  constructor(private readonly e: Engine) {}

  private get svc() {
    return this.e.images;
  }

  async list(o: { all: boolean; filters: Filters }) {
    return this.svc.list(o.filters, o.all).map(imageSummary);
  }

  async inspect(name: string) {
    const img = this.svc.get(name);
    return imageInspect(img, img.layers.map((l) => this.e.layers.diffDir(l.chainId)).reverse());
  }

  async history(name: string) {
    return imageHistory(this.svc.get(name), (id) => this.svc.store.byId(id));
  }

  tag(name: string, repo: string, tag?: string): Promise<void> {
    return this.svc.tag(name, repo, tag);
  }

  remove(name: string, o: { force: boolean; prune: boolean }) {
    return this.svc.remove(name, o.force, o.prune);
  }

  prune(filters: Filters) {
    return this.svc.prune(filters);
  }

  async pull(o: PullOptions, out: Output): Promise<void> {
    await (await registry()).pull(this.e, o, out);
  }

  async import(o: ImportOptions, tar: Readable, out: Output): Promise<void> {
    const ref = o.repo ? (o.tag ? `${o.repo}:${o.tag}` : o.repo) : undefined;
    const img = await importRootfs(tar, this.svc.store, { changes: o.changes, message: o.message, ref });
    this.e.events.emit('image', 'import', img.id, { name: ref ?? img.id });
    out.open('application/json').end(JSON.stringify({ status: img.id }) + '\n');
  }

  async push(name: string, tag: string | undefined, auth: RegistryAuth | undefined, out: Output): Promise<void> {
    await (await registry()).push(this.e, name, tag, auth, out);
  }

  /** 200 before the archive is read, as dockerd: a broken archive is an error line in the stream, where the SDKs look. */
  async load(tar: Readable, _o: { quiet: boolean }, out: Output): Promise<void> {
    const res = out.open('application/json');
    const lines = await loadArchive(tar, this.svc.store);
    for (const l of lines) {
      const m = /^Loaded image(?: ID)?: (.*)$/.exec(l);
      const img = m ? this.svc.store.find(m[1]!) : undefined;
      if (img) this.e.events.emit('image', 'load', img.id, { name: m![1]! });
    }
    for (const l of lines) res.write(JSON.stringify({ stream: `${l}\n` }) + '\n');
    res.end();
  }

  async save(names: string[], out: Output): Promise<void> {
    if (!names.length) throw invalid('no image names given');
    const stream = await prepareSave(this.svc.store, names);
    await sendStream(stream, out.open('application/x-tar'));
    for (const n of names) this.e.events.emit('image', 'save', this.svc.store.resolve(n).id, { name: n });
  }

  async distribution(name: string, auth: RegistryAuth | undefined): Promise<unknown> {
    return (await registry()).distribution(this.e, name, auth);
  }

  async login(body: unknown) {
    return (await registry()).login(this.e, body);
  }
}
