/**
 * Client commands for containers: ps, stop, rm, inspect here, run, logs and exec in run.ts. They speak the Docker
 * Engine API to the engine named by --host / $SAMPAN_HOST / $DOCKER_HOST.
 */
import type { Command } from 'commander';
import { clientFor, exitWith, withErrors } from '../client.js';
import { ApiError } from '../../lib/engine-client.js';
import { ago, ellipsis, goTime, humanSize, printJson, printJsonLines, shortId, table } from '../format.js';
import type { ContainerSummary, Port } from '../../lib/docker-types.js';
import { checkFormat, collect, hostOpt, parseFilters } from './options.js';
import { exec, logs, run, type ExecOptions, type RunOptions } from './run.js';

// ---------- ps ----------

/** Docker's PORTS column: "0.0.0.0:8080->80/tcp, 443/tcp". */
export function formatPorts(ports: Port[] | undefined): string {
  if (!ports || ports.length === 0) return '';
  const seen = new Set<string>();
  const out: string[] = [];
  const sorted = [...ports].sort((a, b) => (a.PrivatePort - b.PrivatePort) || a.Type.localeCompare(b.Type));
  for (const p of sorted) {
    let s: string;
    if (p.PublicPort) {
      const ip = p.IP ?? '';
      const host = ip.includes(':') ? (ip === '::' ? '::' : `[${ip}]`) : ip;
      s = `${host}:${p.PublicPort}->${p.PrivatePort}/${p.Type}`;
    } else s = `${p.PrivatePort}/${p.Type}`;
    if (!seen.has(s)) {
      seen.add(s);
      out.push(s);
    }
  }
  return out.join(', ');
}

function containerNames(c: ContainerSummary): string {
  // names of links ("/other/alias") are left out, as docker does
  return (c.Names ?? [])
    .filter((n) => n.split('/').length <= 2)
    .map((n) => n.replace(/^\//, ''))
    .join(',');
}

export interface PsOptions {
  all?: boolean;
  quiet?: boolean;
  filter?: string[];
  format?: string;
  trunc?: boolean;
  last?: string;
  latest?: boolean;
  size?: boolean;
}

async function ps(opts: PsOptions, cmd: Command): Promise<void> {
  const format = checkFormat(opts.format);
  let limit: number | undefined;
  if (opts.latest) limit = 1;
  else if (opts.last !== undefined) {
    limit = Number(opts.last);
    if (!Number.isInteger(limit)) throw new Error(`invalid value for --last: ${opts.last}`);
    if (limit <= 0) limit = undefined;
  }
  const client = clientFor(cmd);
  const filters = parseFilters(opts.filter);
  const list = await client.json<ContainerSummary[]>('GET', '/containers/json', {
    query: {
      // -n and -l look at containers of any state, as docker's do
      all: opts.all || limit !== undefined ? true : undefined,
      limit,
      size: opts.size ? true : undefined,
      filters: filters ? JSON.stringify(filters) : undefined,
    },
  });
  printContainers(list ?? [], opts, format);
}

/** Prints `ps` output: IDs (-q), JSON lines, or docker's table. */
export function printContainers(list: ContainerSummary[], opts: PsOptions, format: 'table' | 'json'): void {
  const trunc = opts.trunc !== false;
  const id = (c: ContainerSummary) => (trunc ? shortId(c.Id) : c.Id);
  if (opts.quiet) {
    process.stdout.write(list.map((c) => `${id(c)}\n`).join(''));
    return;
  }
  const command = (c: ContainerSummary) => JSON.stringify(trunc ? ellipsis(c.Command ?? '', 20) : c.Command ?? '');
  const image = (c: ContainerSummary) => (trunc && /^sha256:[0-9a-f]{64}$/.test(c.Image) ? shortId(c.Image) : c.Image);
  const size = (c: ContainerSummary) =>
    c.SizeRw === undefined && c.SizeRootFs === undefined
      ? ''
      : `${humanSize(c.SizeRw ?? 0)} (virtual ${humanSize(c.SizeRootFs ?? 0)})`;
  if (format === 'json') {
    printJsonLines(
      list.map((c) => ({
        Command: command(c),
        CreatedAt: goTime(c.Created),
        ID: id(c),
        Image: image(c),
        Labels: Object.entries(c.Labels ?? {}).map(([k, v]) => `${k}=${v}`).join(','),
        LocalVolumes: String((c.Mounts ?? []).filter((m) => m.Name).length),
        Mounts: (c.Mounts ?? []).map((m) => (m.Name ? (trunc ? ellipsis(m.Name, 15) : m.Name) : m.Source ?? '')).join(','),
        Names: containerNames(c),
        Networks: Object.keys(c.NetworkSettings?.Networks ?? {}).join(','),
        Ports: formatPorts(c.Ports),
        RunningFor: ago(c.Created),
        Size: size(c) || '0B',
        State: c.State ?? '',
        Status: c.Status ?? '',
      })),
    );
    return;
  }
  const headers = ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES'];
  if (opts.size) headers.push('SIZE');
  const rows = list.map((c) => {
    const row = [id(c), image(c), command(c), ago(c.Created), c.Status ?? '', formatPorts(c.Ports), containerNames(c)];
    if (opts.size) row.push(size(c));
    return row;
  });
  process.stdout.write(`${table(headers, rows)}\n`);
}

// ---------- stop, rm ----------

/** Runs `fn` for every name, printing the name on success and the error otherwise; exits 1 if any failed. */
export async function eachContainer(names: string[], fn: (name: string) => Promise<void>): Promise<void> {
  let failed = false;
  for (const n of names) {
    try {
      await fn(n);
      process.stdout.write(`${n}\n`);
    } catch (err) {
      failed = true;
      process.stderr.write(err instanceof ApiError ? `Error response from daemon: ${err.message}\n` : `Error: ${(err as Error).message}\n`);
    }
  }
  if (failed) await exitWith(1);
}

async function stop(names: string[], o: { time?: string; signal?: string }, cmd: Command): Promise<void> {
  const client = clientFor(cmd);
  if (o.time !== undefined && !/^-?\d+$/.test(o.time)) throw new Error(`invalid value for --time: ${o.time}`);
  await eachContainer(names, async (n) => {
    await client.request('POST', `/containers/${encodeURIComponent(n)}/stop`, { query: { t: o.time, signal: o.signal } });
  });
}

async function rm(names: string[], o: { force?: boolean; volumes?: boolean }, cmd: Command): Promise<void> {
  const client = clientFor(cmd);
  await eachContainer(names, async (n) => {
    await client.request('DELETE', `/containers/${encodeURIComponent(n)}`, {
      query: { force: o.force ? true : undefined, v: o.volumes ? true : undefined },
    });
  });
}

// ---------- inspect ----------

async function inspect(names: string[], o: { type?: string }, cmd: Command): Promise<void> {
  const client = clientFor(cmd);
  const type = o.type;
  if (type && type !== 'container' && type !== 'image') throw new Error(`"${type}" is not a valid value for --type`);
  const found: unknown[] = [];
  const errors: string[] = [];
  for (const n of names) {
    let obj: unknown;
    let lastErr: unknown;
    const tries = type === 'image' ? ['image'] : type === 'container' ? ['container'] : ['container', 'image'];
    for (const t of tries) {
      try {
        obj = await client.json('GET', `/${t === 'container' ? 'containers' : 'images'}/${encodeURIComponent(n)}/json`);
        break;
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 404)) throw err;
        lastErr = err;
      }
    }
    if (obj !== undefined) found.push(obj);
    else if (lastErr) errors.push(type ? `Error: No such ${type}: ${n}` : `Error: No such object: ${n}`);
  }
  printJson(found);
  if (errors.length) {
    process.stderr.write(errors.map((e) => `${e}\n`).join(''));
    await exitWith(1);
  }
}

// ---------- registration ----------

export function registerContainerCommands(program: Command): void {
  // run and exec pass everything after the image / container on to the process: that needs
  // positional options on the program (its own options go before the command name)
  program.enablePositionalOptions();

  hostOpt(
    program
      .command('ps')
      .description('List containers')
      .option('-a, --all', 'show all containers (default shows just running)')
      .option('-q, --quiet', 'only display container IDs')
      .option('-f, --filter <filter>', 'filter output based on conditions provided (name=value, repeatable)', collect)
      .option('--format <format>', 'output format: table or json', 'table')
      .option('-n, --last <n>', 'show n last created containers (includes all states)')
      .option('-l, --latest', 'show the latest created container (includes all states)')
      .option('-s, --size', 'display total file sizes')
      .option('--no-trunc', "don't truncate output"),
  ).action(withErrors((o: PsOptions, cmd: Command) => ps(o, cmd)));

  hostOpt(
    program
      .command('run')
      .description('Create and run a new container from an image')
      .argument('<image>', 'image to run')
      .argument('[command...]', 'command and arguments for the container')
      .option('-d, --detach', 'run container in background and print container ID')
      .option('-i, --interactive', 'keep STDIN open and attach it')
      .option('-t, --tty', 'allocate a pseudo-TTY')
      .option('--rm', 'automatically remove the container when it exits')
      .option('--name <name>', 'assign a name to the container')
      .option('-e, --env <K=V>', 'set environment variables (repeatable)', collect)
      .option('-w, --workdir <dir>', 'working directory inside the container')
      .option('-u, --user <user>', 'username or UID (format: <name|uid>[:<group|gid>])')
      .option('--entrypoint <cmd>', 'overwrite the default ENTRYPOINT of the image')
      .option('-l, --label <k=v>', 'set metadata on a container (repeatable)', collect)
      .option('--network <mode>', 'network: bridge, none, host or a network name')
      .option('-v, --volume <src:dst>', 'bind mount a volume (repeatable)', collect)
      .option('-h, --hostname <name>', 'container host name')
      .option('--no-sig-proxy', 'do not proxy received signals to the process')
      .option('-p, --publish <[ip:][hostPort:]port[/proto]>', "publish a container's port to the host (repeatable)", collect)
      .option('--ip <address>', 'IPv4 address on the --network (user networks only)')
      .option('-m, --memory <bytes>', 'memory limit (e.g. 512m, 1g)')
      .option('--cpus <n>', 'number of CPUs (e.g. 0.5)')
      .option('--priority <priority>', 'online (default) or batch: batch yields CPU, IO and memory to online containers')
      .option('--rich', 'rich container: an init as PID 1 (reaps zombies), initscript, env for login shells')
      .option('--rich-mode <mode>', 'init of a rich container: dumb-init (default), tini or systemd')
      .option('--initscript <path>', 'script in the container that a rich container runs before its command at each start')
      .option('--replicas <n>', 'with -d and --name PREFIX, against a cluster manager: N identical replicas PREFIX-1…N spread over the nodes')
      .helpOption('--help', 'display help for command')
      .passThroughOptions(),
  ).action(withErrors((image: string, args: string[], o: RunOptions, cmd: Command) => run(image, args, o, cmd)));

  hostOpt(
    program
      .command('logs')
      .description('Fetch the logs of a container')
      .argument('<container>', 'container name or ID')
      .option('-f, --follow', 'follow log output')
      .option('-n, --tail <n>', 'number of lines to show from the end of the logs', 'all')
      .option('-t, --timestamps', 'show timestamps')
      .option('--since <time>', 'show logs since a unix timestamp')
      .option('--until <time>', 'show logs before a unix timestamp'),
  ).action(withErrors((name: string, o: Parameters<typeof logs>[1], cmd: Command) => logs(name, o, cmd)));

  hostOpt(
    program
      .command('exec')
      .description('Execute a command in a running container')
      .argument('<container>', 'container name or ID')
      .argument('<command...>', 'command and arguments')
      .option('-i, --interactive', 'keep STDIN open even if not attached')
      .option('-t, --tty', 'allocate a pseudo-TTY')
      .option('-d, --detach', 'detached mode: run command in the background')
      .option('-e, --env <K=V>', 'set environment variables (repeatable)', collect)
      .option('-u, --user <user>', 'username or UID (format: <name|uid>[:<group|gid>])')
      .option('-w, --workdir <dir>', 'working directory inside the container')
      .option('--privileged', 'give extended privileges to the command')
      .passThroughOptions(),
  ).action(withErrors((container: string, args: string[], o: ExecOptions, cmd: Command) => exec(container, args, o, cmd)));

  hostOpt(
    program
      .command('stop')
      .description('Stop one or more running containers')
      .argument('<container...>', 'container names or IDs')
      .option('-t, --time <seconds>', 'seconds to wait before killing the container')
      .option('-s, --signal <signal>', 'signal to send to the container'),
  ).action(withErrors((names: string[], o: { time?: string; signal?: string }, cmd: Command) => stop(names, o, cmd)));

  hostOpt(
    program
      .command('rm')
      .description('Remove one or more containers')
      .argument('<container...>', 'container names or IDs')
      .option('-f, --force', 'force the removal of a running container (uses SIGKILL)')
      .option('-v, --volumes', 'remove anonymous volumes associated with the container'),
  ).action(withErrors((names: string[], o: { force?: boolean; volumes?: boolean }, cmd: Command) => rm(names, o, cmd)));

  hostOpt(
    program
      .command('inspect')
      .description('Return low-level information on containers or images')
      .argument('<name...>', 'container or image names or IDs')
      .option('--type <type>', 'only look for this type: container or image'),
  ).action(withErrors((names: string[], o: { type?: string }, cmd: Command) => inspect(names, o, cmd)));
}
