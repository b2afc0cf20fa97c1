import type { Router } from './http.js';
import type { Engine } from '../engine.js';
import { imageHistory, imageInspect, imageSummary } from './views.js';
import { invalid } from '../../lib/errors.js';
import { loadArchive } from '../images/load.js';
import { prepareSave } from '../images/save.js';
import { importRootfs } from '../images/import.js';
import { sendStream } from '../../lib/streams.js';

export function imageRoutes(r: Router, e: Engine): void {
  const svc = e.images;

  r.add('GET', '/images/json', (ctx) => {
    const filters = ctx.filters();
    ctx.send(200, svc.list(filters, ctx.bool('all')).map(imageSummary));
  });

  r.add('POST', '/images/load', async (ctx) => {
    // 200 before the archive is read, as dockerd: a broken archive is an error line in the stream, where the SDKs look
    const res = ctx.stream('application/json');
    const lines = await loadArchive(ctx.req, svc.store);
    for (const l of lines) {
      const m = /^Loaded image(?: ID)?: (.*)$/.exec(l);
      if (m) {
        const img = svc.store.find(m[1]!);
        if (img) e.events.emit('image', 'load', img.id, { name: m[1]! });
      }
    }
    for (const l of lines) res.write(JSON.stringify({ stream: `${l}\n` }) + '\n');
    res.end();
  });

  const save = async (ctx: Parameters<Parameters<Router['add']>[2]>[0], names: string[]) => {
    if (!names.length) throw invalid('no image names given');
    const stream = await prepareSave(svc.store, names);
    await sendStream(stream, ctx.stream('application/x-tar'));
    for (const n of names) e.events.emit('image', 'save', svc.store.resolve(n).id, { name: n });
  };
  r.add('GET', '/images/get', (ctx) => save(ctx, ctx.query.getAll('names')));
  r.add('GET', '/images/{name*}/get', (ctx) => save(ctx, [ctx.param('name')]));

  r.add('POST', '/images/create', async (ctx) => {
    const fromSrc = ctx.query.get('fromSrc');
    const repo = ctx.query.get('repo') ?? '';
    const tag = ctx.query.get('tag') ?? '';
    if (fromSrc === '-') {
      const ref = repo ? (tag ? `${repo}:${tag}` : repo) : undefined;
      const img = await importRootfs(ctx.req, svc.store, { changes: ctx.query.getAll('changes'), message: ctx.query.get('message') ?? undefined, ref });
      e.events.emit('image', 'import', img.id, { name: ref ?? img.id });
      const res = ctx.stream('application/json');
      res.end(JSON.stringify({ status: img.id }) + '\n');
      return;
    }
    if (fromSrc) throw invalid('importing from a URL is not supported; send the archive in the request body (fromSrc=-)');
    const image = ctx.query.get('fromImage');
    if (!image) throw invalid('fromImage or fromSrc is required');
    // the registry client loads with the first pull (see lazyRoutes)
    const { pullFromRegistry } = await import('./registry.js');
    await pullFromRegistry(ctx, e, image, tag);
  });

  r.add('GET', '/images/{name*}/json', (ctx) => {
    const img = svc.get(ctx.param('name'));
    ctx.send(200, imageInspect(img, img.layers.map((l) => e.layers.diffDir(l.chainId)).reverse()));
  });

  r.add('GET', '/images/{name*}/history', (ctx) => ctx.send(200, imageHistory(svc.get(ctx.param('name')), (id) => svc.store.byId(id))));

  r.add('POST', '/images/{name*}/tag', async (ctx) => {
    await svc.tag(ctx.param('name'), ctx.query.get('repo') ?? '', ctx.query.get('tag') ?? undefined);
    ctx.send(201);
  });

  r.add('DELETE', '/images/{name*}', async (ctx) => {
    ctx.send(200, await svc.remove(ctx.param('name'), ctx.bool('force'), !ctx.bool('noprune')));
  });

  r.add('POST', '/images/prune', async (ctx) => ctx.send(200, await svc.prune(ctx.filters())));

}
