/**
 * The releases' REST routes under /sampan/v1/releases (docs/release.md): JSON in and out, errors through the
 * manager's mapping (CONFLICT → 409, NOT_FOUND → 404, INVALID_ARGUMENT → 400), the watch as server-sent events.
 */
import type { TLSSocket } from 'node:tls';
import type { Ctx, Handler } from '../../docker-api/index.js';
import { invalid } from '../../lib/errors.js';
import { UI_USER_HEADER } from '../../web/index.js';
import type { ReleaseAction, ReleaseController } from './controller.js';
import { validateRelease } from './record.js';

const ACTIONS: readonly ReleaseAction[] = ['confirm', 'pause', 'resume', 'rollback'];
const KEEPALIVE_MS = 15_000;

/**
 * Who asks: the subject of a verified client certificate (TCP with mutual TLS); a browser's token ("ui:ID", set by
 * the browsers' listener once the token is checked); on the unix socket, which only its owner's group reaches, the
 * uid the CLI says it runs as ("unix:UID"), else "unix:unknown".
 */
export function requester(ctx: Ctx, said?: unknown): string {
  const sock = ctx.req.socket as Partial<TLSSocket>;
  if (sock.encrypted && sock.authorized && typeof sock.getPeerCertificate === 'function') {
    const cn = sock.getPeerCertificate().subject?.CN;
    if (cn) return `cn:${Array.isArray(cn) ? cn[0] : cn}`;
  }
  const ui = ctx.req.headers[UI_USER_HEADER];
  if (typeof ui === 'string' && /^ui:[0-9a-z]+$/.test(ui)) return ui;
  return typeof said === 'string' && /^unix:\d+$/.test(said) ? said : 'unix:unknown';
}

/** Registers the routes with the manager's `route(method, pattern, handler)`. */
export function releaseRoutes(route: (method: string, pattern: string, h: Handler) => unknown, c: ReleaseController): void {
  route('POST', '/sampan/v1/releases', async (ctx) => {
    const body = ((await ctx.json()) ?? {}) as Record<string, unknown>;
    const { user, ...req } = body;
    ctx.send(201, await c.start(validateRelease(req), requester(ctx, user)));
  });
  route('GET', '/sampan/v1/releases', async (ctx) => ctx.send(200, await c.history(ctx.query.get('service') || undefined)));
  route('GET', '/sampan/v1/releases/{service}', async (ctx) => ctx.send(200, await c.current(ctx.param('service'))));
  route('POST', '/sampan/v1/releases/{service}/{action}', async (ctx) => {
    const action = ctx.param('action') as ReleaseAction;
    if (!ACTIONS.includes(action)) throw invalid(`unknown release action ${JSON.stringify(action)}: ${ACTIONS.join(', ')}`);
    const body = ((await ctx.json()) ?? {}) as { user?: unknown };
    ctx.send(200, await c.act(ctx.param('service'), action, requester(ctx, body.user)));
  });
  // `record` events: the record now, then each time it changes
  route('GET', '/sampan/v1/releases/{service}/watch', async (ctx) => {
    const service = ctx.param('service');
    const first = await c.current(service);
    const res = ctx.stream('text/event-stream', { 'Cache-Control': 'no-cache' });
    const write = (json: string) => !res.destroyed && res.write(`event: record\ndata: ${json}\n\n`);
    const unwatch = c.watch(service, (r) => write(JSON.stringify(r)));
    const ping = setInterval(() => !res.destroyed && res.write(':\n\n'), KEEPALIVE_MS);
    write(JSON.stringify(first));
    void ctx.closed().then(() => {
      unwatch();
      clearInterval(ping);
    });
  });
}
