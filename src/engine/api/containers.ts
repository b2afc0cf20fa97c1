import { invalid, errorMessage, internal, notImplemented } from '../../lib/errors.js';
import type { Ctx, Router } from './http.js';
import { frame } from './http.js';
import { drained } from '../../lib/streams.js';
import type { Engine } from '../engine.js';
import { bridgeAttach } from './attach.js';
import { DEFAULT_DETACH_KEYS, parseDetachKeys } from '../containers/detach.js';
import { containerInspect, containerSummary } from './views.js';
import { readLog, parseUnixNano } from '../containers/logs.js';
import type { WaitCondition } from '../containers/service.js';
import type { ContainerRecord } from '../containers/model.js';
import { pruneContainers } from '../containers/prune.js';
import { readable } from '../containers/logconfig.js';
import { labelMatch } from '../images/service.js';
import { containerNetworks, portSummary } from './netviews.js';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { goFields } from '../../lib/gojson.js';
import type { ExecConfig } from '../containers/exec.js';

const RAW = 'application/vnd.docker.raw-stream';
const MUX = 'application/vnd.docker.multiplexed-stream';
const EXEC_CONFIG_FIELDS = ['AttachStdin', 'AttachStdout', 'AttachStderr', 'Tty', 'Cmd', 'Env', 'User', 'WorkingDir', 'Privileged', 'DetachKeys', 'ConsoleSize'] as const;

interface ExecStartBody {
  Detach: boolean;
  Tty: boolean;
  ConsoleSize: number[] | null;
}

/** Docker's publish/expose filter values: "80", "80/udp", "8000-8080/tcp" → the set of "port/proto". */
function portFilter(name: string, vals: string[]): Set<string> {
  const out = new Set<string>();
  for (const v of vals) {
    const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/.exec(v);
    if (!m) throw invalid(`invalid value for filter '${name}': ${v}`);
    const [start, end] = [Number(m[1]), Number(m[2] ?? m[1])];
    if (end < start || end > 65535) throw invalid(`invalid port range for filter '${name}': ${v}`);
    for (let p = start; p <= end; p++) out.add(`${p}/${m[3] ?? 'tcp'}`);
  }
  return out;
}

export function containerRoutes(r: Router, e: Engine): void {
  const svc = e.containers;

  const imageName = (rec: ContainerRecord) => rec.Config.Image;

  r.add('GET', '/containers/json', async (ctx) => {
    const all = ctx.bool('all');
    const limit = ctx.int('limit', -1)!;
    const filters = ctx.filters();
    let list = svc.list().filter((c) => all || c.State.Status === 'running' || c.State.Status === 'paused' || c.State.Status === 'restarting' || filters.has('status'));
    // publish and expose match together: a container passes if either matches one of its ports
    const publish = portFilter('publish', filters.get('publish') ?? []);
    const expose = portFilter('expose', filters.get('expose') ?? []);
    if (publish.size || expose.size) {
      list = list.filter((c) => portSummary(c).some((p) => publish.has(`${p.PublicPort}/${p.Type}`) || expose.has(`${p.PrivatePort}/${p.Type}`)));
    }
    for (const [k, vals] of filters) {
      list = list.filter((c) => {
        switch (k) {
          case 'name':
            return vals.some((v) => new RegExp(v.replace(/^\//, '')).test(c.Name));
          case 'id':
            return vals.some((v) => c.Id.startsWith(v));
          case 'label':
            return vals.every((v) => labelMatch(c.Config.Labels, v));
          case 'status': {
            const s = c.State.Status === 'exited' && !c.HasBeenStarted && c.State.FinishedAt.startsWith('0001') ? 'created' : c.State.Status;
            return vals.includes(s);
          }
          case 'exited':
            return c.State.Status === 'exited' && vals.includes(String(c.State.ExitCode));
          case 'ancestor':
            return vals.some((v) => {
              const img = e.images.store.find(v);
              return (img && img.id === c.Image) || c.Config.Image === v;
            });
          case 'volume':
            return vals.some((v) => c.Mounts.some((m) => m.Name === v || m.Destination === v));
          case 'network': {
            const attached = Object.entries(containerNetworks(c)).map(([name, ep]) => [name, (ep as { NetworkID?: string }).NetworkID ?? '']);
            return vals.some((v) => attached.some(([name, id]) => name === v || (id && id.startsWith(v))));
          }
          case 'publish':
          case 'expose':
            return true;
          case 'before':
          case 'since': {
            const ref = svc.get(vals[0]!);
            return k === 'before' ? c.Created < ref.Created : c.Created > ref.Created;
          }
          case 'health':
            for (const v of vals) if (!['starting', 'healthy', 'unhealthy', 'none'].includes(v)) throw invalid(`Unrecognised filter value for health: ${v}`);
            return vals.includes(c.State.Health?.Status ?? 'none');
          default:
            throw invalid(`invalid filter '${k}'`);
        }
      });
    }
    list.sort((a, b) => (a.Created < b.Created ? 1 : -1));
    if (limit > 0) list = list.slice(0, limit);
    const size = ctx.bool('size');
    ctx.send(200, await Promise.all(list.map(async (c) => ({ ...containerSummary(c, imageName(c)), ...(size ? await svc.sizes(c) : {}) }))));
  });

  r.add('POST', '/containers/prune', async (ctx) => ctx.send(200, await pruneContainers(svc, ctx.filters())));

  r.add('POST', '/containers/create', async (ctx) => {
    const body = await ctx.json();
    const res = await svc.create(body, ctx.query.get('name') ?? undefined);
    ctx.send(201, res);
  });

  r.add('GET', '/containers/{id}/json', async (ctx) => {
    const c = svc.get(ctx.param('id'));
    const dir = svc.dir(c.Id);
    const lowers = c.ImageChain.map((ch) => e.layers.diffDir(ch as `sha256:${string}`)).reverse();
    ctx.send(200, { ...containerInspect(c, { dir, fs: path.join(dir, 'fs'), lowers }, e.execs.idsFor(c.Id)), ...(ctx.bool('size') ? await svc.sizes(c) : {}) });
  });

  r.add('POST', '/containers/{id}/start', async (ctx) => {
    await svc.start(ctx.param('id'));
    ctx.send(204);
  });

  r.add('POST', '/containers/{id}/stop', async (ctx) => {
    await svc.stop(ctx.param('id'), ctx.int('t'), ctx.query.get('signal') ?? undefined);
    ctx.send(204);
  });

  r.add('POST', '/containers/{id}/restart', async (ctx) => {
    await svc.restart(ctx.param('id'), ctx.int('t'), ctx.query.get('signal') ?? undefined);
    ctx.send(204);
  });

  r.add('POST', '/containers/{id}/kill', async (ctx) => {
    await svc.kill(ctx.param('id'), ctx.query.get('signal') ?? undefined);
    ctx.send(204);
  });

  r.add('POST', '/containers/{id}/pause', async (ctx) => {
    await svc.pause(ctx.param('id'));
    ctx.send(204);
  });

  r.add('POST', '/containers/{id}/unpause', async (ctx) => {
    await svc.unpause(ctx.param('id'));
    ctx.send(204);
  });

  const remove = async (ctx: Ctx, id: string) => {
    await svc.remove(id, { force: ctx.bool('force'), volumes: ctx.bool('v') });
    e.execs.dropContainer(id);
    ctx.send(204);
  };
  r.add('DELETE', '/containers/{id}', async (ctx) => {
    const id = svc.get(ctx.param('id')).Id;
    // Docker's message and status (a plain error there)
    if (ctx.bool('link')) throw internal('Conflict, cannot remove the default link name of the container');
    await remove(ctx, id);
  });
  // a legacy link's name, PARENT/ALIAS: `docker rm --link` removes the link; without it Docker removes the container
  // that the name resolves to
  r.add('DELETE', '/containers/{parent}/{alias}', async (ctx) => {
    if (!ctx.bool('link')) return remove(ctx, svc.linked(ctx.param('parent'), ctx.param('alias')).child.Id);
    await svc.removeLink(ctx.param('parent'), ctx.param('alias'));
    ctx.send(204);
  });

  r.add('POST', '/containers/{id}/rename', async (ctx) => {
    await svc.rename(ctx.param('id'), ctx.query.get('name') ?? '');
    ctx.send(204);
  });

  r.add('POST', '/containers/{id}/wait', async (ctx) => {
    const cond = (ctx.query.get('condition') || 'not-running') as WaitCondition;
    if (!['not-running', 'next-exit', 'removed'].includes(cond)) throw invalid(`invalid condition: "${cond}"`);
    const waiting = svc.wait(ctx.param('id'), cond, ctx.closed());
    // headers go out at once so the client knows the wait is registered (the CLI starts the container after)
    const res = ctx.stream('application/json');
    try {
      res.end(JSON.stringify(await waiting) + '\n');
    } catch (err) {
      res.end(JSON.stringify({ StatusCode: -1, Error: { Message: errorMessage(err) } }) + '\n');
    }
  });

  r.add('GET', '/containers/{id}/top', async (ctx) => {
    ctx.send(200, await svc.top(ctx.param('id'), ctx.query.get('ps_args') ?? ''));
  });

  r.add('POST', '/containers/{id}/resize', async (ctx) => {
    await svc.resize(ctx.param('id'), ctx.int('h', 24)!, ctx.int('w', 80)!);
    ctx.send(200);
  });

  r.add('GET', '/containers/{id}/logs', async (ctx) => {
    const c = svc.get(ctx.param('id'));
    if (!readable(c.HostConfig.LogConfig)) throw notImplemented('configured logging driver does not support reading');
    const stdout = ctx.bool('stdout');
    const stderr = ctx.bool('stderr');
    if (!stdout && !stderr) throw invalid('You must choose at least one stream');
    const tailQ = ctx.query.get('tail');
    const tail = !tailQ || tailQ === 'all' ? undefined : Number(tailQ);
    if (tail !== undefined && !Number.isFinite(tail)) throw invalid(`invalid tail value: ${tailQ}`);
    const timestamps = ctx.bool('timestamps');
    const follow = ctx.bool('follow');
    const tty = c.Config.Tty;
    const res = ctx.stream(tty ? RAW : MUX);
    const gone = ctx.closed();
    const stop = Promise.race([gone, svc.stopped(c.Id)]);
    for await (const entry of readLog(svc.logPath(c.Id), { tail, sinceNano: parseUnixNano(ctx.query.get('since')), untilNano: parseUnixNano(ctx.query.get('until')), follow, stop })) {
      if (res.destroyed) break;
      if ((entry.stream === 'stdout' && !stdout) || (entry.stream === 'stderr' && !stderr)) continue;
      const text = `${timestamps ? `${entry.time} ` : ''}${entry.text}${entry.partial ? '' : '\n'}`;
      const buf = Buffer.from(text);
      // a client that reads slowly keeps the log where it is instead of all of it in this process's memory
      if (!res.write(tty ? buf : frame(entry.stream === 'stdout' ? 1 : 2, buf))) await drained(res).catch(() => undefined);
    }
    res.end();
  });

  const attach = async (ctx: Ctx) => {
    const c = svc.get(ctx.param('id'));
    const streams = { tty: c.Config.Tty, stdin: ctx.bool('stdin'), stdout: ctx.bool('stdout'), stderr: ctx.bool('stderr'), detachKeys: parseDetachKeys(ctx.query.get('detachKeys') ?? DEFAULT_DETACH_KEYS) };
    if (!ctx.bool('stream') && !ctx.bool('logs')) throw invalid('at least one of stream or logs must be set');
    if (c.State.Status === 'removing' || c.State.Status === 'dead') throw invalid('You cannot attach to a stopped container, start it first');
    const stream = ctx.bool('stream');
    let finished!: () => void;
    const ended = new Promise<void>((r) => (finished = r));
    let replayed!: () => void;
    const logsSent = new Promise<void>((r) => (replayed = r));
    let client: Duplex | undefined;
    const hook = async (sock: string) => {
      // a start waits for the logs to go out: the new run's output comes after them, and only once
      await logsSent;
      if (!client || client.destroyed) return;
      const { done } = await bridgeAttach(sock, client, streams);
      void done.then((detached) => {
        if (detached) e.events.emit('container', 'detach', c.Id, svc.attrs(c));
        finished();
      });
    };
    // registered before the response headers go out: clients start the container as soon as they have them
    const attaching = stream ? svc.attach(c.Id, hook) : Promise.resolve();
    attaching.catch(() => undefined); // awaited below
    try {
      client = ctx.hijack(c.Config.Tty ? RAW : MUX);
      e.events.emit('container', 'attach', c.Id, svc.attrs(c));
      if (ctx.bool('logs')) {
        for await (const entry of readLog(svc.logPath(c.Id), { sinceNano: 0n, untilNano: 0n, follow: false })) {
          const buf = Buffer.from(`${entry.text}${entry.partial ? '' : '\n'}`);
          client.write(c.Config.Tty ? buf : frame(entry.stream === 'stdout' ? 1 : 2, buf));
        }
      }
    } catch (err) {
      svc.dropPendingAttach(c.Id, hook);
      client?.destroy();
      throw err;
    } finally {
      replayed();
    }
    if (!stream) {
      client.end();
      return;
    }
    const drop = () => {
      svc.dropPendingAttach(c.Id, hook);
      finished();
    };
    client.once('close', drop);
    if (client.destroyed) drop();
    const unsubscribe = svc.onStartFailure(c.Id, drop);
    await attaching;
    await ended;
    unsubscribe();
    if (!client.destroyed) client.end();
  };
  r.add('POST', '/containers/{id}/attach', attach);

  // exec
  r.add('POST', '/containers/{id}/exec', async (ctx) => {
    ctx.send(201, e.execs.create(ctx.param('id'), goFields<ExecConfig>(await ctx.json(), EXEC_CONFIG_FIELDS)));
  });

  r.add('POST', '/exec/{id}/start', async (ctx) => {
    const body = goFields<ExecStartBody>(await ctx.json(), ['Detach', 'Tty', 'ConsoleSize']);
    const ex = e.execs.get(ctx.param('id'));
    const cfg = ex.config;
    if (body.Detach) {
      await e.execs.start(ex.id, true);
      ctx.send(200);
      return;
    }
    let client: ReturnType<Ctx['hijack']> | undefined;
    let output = Promise.resolve(false);
    const detachKeys = parseDetachKeys(cfg.DetachKeys ?? DEFAULT_DETACH_KEYS);
    // as in Docker, the start request's Tty decides the framing, whatever the session's terminal
    const tty = !!body.Tty;
    const { exited } = await e.execs.start(ex.id, false, async (sock) => {
      client = ctx.hijack(tty ? RAW : MUX);
      const { done } = await bridgeAttach(sock, client, { tty, stdin: !!cfg.AttachStdin, stdout: cfg.AttachStdout !== false, stderr: cfg.AttachStderr !== false, detachKeys });
      output = done;
    }, body.ConsoleSize);
    // the CLI reads the exit code right after the stream ends: have it recorded first (unless it detached)
    if (!(await output)) {
      // a client gone without detaching leaves nobody to read, feed or end the session: kill it rather than leave
      // it running for nobody (dockerd does leave it, until its output pipe fills and it blocks for good)
      void ctx.closed().then(() => e.execs.kill(ex.id));
      await exited;
    }
    if (client && !client.destroyed) client.end();
  });

  r.add('GET', '/exec/{id}/json', (ctx) => ctx.send(200, e.execs.inspect(ctx.param('id'))));

  r.add('POST', '/exec/{id}/resize', async (ctx) => {
    await e.execs.resize(ctx.param('id'), ctx.int('h', 24)!, ctx.int('w', 80)!);
    ctx.send(200);
  });
}
