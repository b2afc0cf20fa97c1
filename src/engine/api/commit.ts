/** Routes for a container's filesystem as a whole: commit, changes (docker diff), export. */
import type { Router } from './http.js';
import type { Engine } from '../engine.js';
import { invalid } from '../../lib/errors.js';
import { sendStream } from '../../lib/streams.js';
import type { ContainerConfig } from '../containers/model.js';

export function commitRoutes(r: Router, e: Engine): void {
  r.add('POST', '/commit', async (ctx) => {
    const container = ctx.query.get('container') ?? '';
    const repo = ctx.query.get('repo') ?? '';
    const tag = ctx.query.get('tag') ?? '';
    // as Docker: a tag without a repository names nothing
    const ref = repo ? (tag ? `${repo}:${tag}` : repo) : undefined;
    // the body is a container Config to take over the container's own (the CLI sends none)
    const body = await ctx.json<Partial<ContainerConfig> | null>();
    if (body !== undefined && body !== null && (typeof body !== 'object' || Array.isArray(body))) throw invalid('commit: the request body must be a container Config object');
    const img = await e.commits.commit(container, {
      containerConfig: body ?? undefined,
      changes: ctx.query.getAll('changes'),
      comment: ctx.query.get('comment') || undefined,
      author: ctx.query.get('author') || undefined,
      pause: ctx.bool('pause', true),
      ref,
    });
    ctx.send(201, { Id: img.id });
  });

  r.add('GET', '/containers/{id}/changes', async (ctx) => {
    ctx.send(200, await e.commits.changes(ctx.param('id')));
  });

  r.add('GET', '/containers/{id}/export', async (ctx) => {
    await e.commits.export(ctx.param('id'), async (tar) => {
      await sendStream(tar, ctx.stream('application/x-tar'));
    });
  });
}
