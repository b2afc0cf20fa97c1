/**
 * Client commands for containers: ps, run, logs, exec, stop, rm, inspect. They speak the Docker
 * Engine API to the engine named by --host / $SAMPAN_HOST / $DOCKER_HOST.
 */
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { Command, Option } from 'commander';
import { clientFor, exitWith, withErrors } from '../client.js';
import { ApiError, EngineClient, demux } from '../../lib/engine-client.js';
import { ago, ellipsis, goTime, humanSize, printJson, printJsonLines, shortId, table } from '../format.js';
import { parseBytes } from '../../lib/units.js';
import type { ContainerInspect, ContainerSummary, Port } from '../../lib/docker-types.js';

/** Collects a repeatable option's values: `-e A=1 -e B=2`. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** `k=v` pairs into docker's filters object: {"k": ["v", ...]}. */
export function parseFilters(list: string[] | undefined): Record<string, string[]> | undefined {
  if (!list || list.length === 0) return undefined;
  const out: Record<string, string[]> = {};
  for (const f of list) {
    const i = f.indexOf('=');
    if (i <= 0) throw new Error(`bad format of filter (expected name=value): ${f}`);
    const k = f.slice(0, i).trim().toLowerCase();
    (out[k] ??= []).push(f.slice(i + 1));
  }
  return out;
}

/** `-e K=V` as given; a bare `-e K` takes K from the local environment (and is dropped when unset there). */
export function parseEnv(list: string[] | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  for (const e of list ?? []) {
    if (e.includes('=')) {
      if (e.startsWith('=')) throw new Error(`invalid environment variable: ${e}`);
      out.push(e);
    } else if (env[e] !== undefined) out.push(`${e}=${env[e]}`);
  }
  return out;
}

/** `-l k=v` labels; a bare `-l k` is an empty label. */
export function parseLabels(list: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of list ?? []) {
    const i = l.indexOf('=');
    if (i === 0) throw new Error(`invalid label: ${l}`);
    if (i < 0) out[l] = '';
    else out[l.slice(0, i)] = l.slice(i + 1);
  }
  return out;
}

/** Adds the per-command `-H, --host` (so it works after the command name as well as before). */
export function hostOpt(cmd: Command): Command {
  return cmd.addOption(new Option('-H, --host <url>', 'engine address (unix:///path or tcp://host:port)').hideHelp());
}

function checkFormat(fmt: string | undefined): 'table' | 'json' {
  const f = (fmt ?? 'table').trim();
  if (f === '' || f === 'table') return 'table';
  if (f === 'json' || f === '{{json .}}') return 'json';
  throw new Error(`unsupported format "${fmt}": use table or json`);
}

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

// ---------- streaming helpers shared by run and exec ----------

/** Current size of the local terminal, when stdout is one. */
function terminalSize(): { h: number; w: number } | undefined {
  const out = process.stdout;
  if (!out.isTTY || !out.rows || !out.columns) return undefined;
  return { h: out.rows, w: out.columns };
}

let rawModeOn = false;
function setRaw(on: boolean): void {
  const stdin = process.stdin;
  if (!stdin.isTTY) return;
  if (on === rawModeOn) return;
  stdin.setRawMode(on);
  rawModeOn = on;
}
process.on('exit', () => {
  if (rawModeOn) {
    try {
      process.stdin.setRawMode(false);
    } catch {
      /* the terminal is gone */
    }
  }
});

/** Copies the engine's output to ours: raw with a TTY, else demultiplexed into stdout and stderr. */
function pumpOutput(sock: Readable, tty: boolean): Promise<void> {
  if (!tty) {
    return demux(
      sock,
      (d) => process.stdout.write(d),
      (d) => process.stderr.write(d),
    );
  }
  return new Promise((resolve, reject) => {
    sock.on('data', (d: Buffer) => process.stdout.write(d));
    sock.once('end', () => resolve());
    sock.once('close', () => resolve());
    sock.once('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? resolve() : reject(err)));
  });
}

/** Sends our stdin to the hijacked connection; at its end, half-closes so the process sees EOF. */
function pumpInput(sock: Socket): () => void {
  const stdin = process.stdin;
  const onData = (d: Buffer) => {
    if (!sock.destroyed && sock.writable) sock.write(d);
  };
  const onEnd = () => {
    if (!sock.destroyed && sock.writable) sock.end();
  };
  stdin.on('data', onData);
  stdin.once('end', onEnd);
  stdin.resume();
  return () => {
    stdin.off('data', onData);
    stdin.off('end', onEnd);
    stdin.pause();
  };
}

/** Keeps the remote terminal the size of ours: now and on every local resize. */
function followResize(resize: (h: number, w: number) => Promise<unknown>): () => void {
  const send = () => {
    const s = terminalSize();
    if (s) resize(s.h, s.w).catch(() => undefined);
  };
  send();
  if (!process.stdout.isTTY) return () => undefined;
  process.stdout.on('resize', send);
  return () => process.stdout.off('resize', send);
}

/** Forwards the signals we get to the container (docker's --sig-proxy, on when there is no TTY). */
function proxySignals(client: EngineClient, id: string): () => void {
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];
  const handlers = signals.map((sig) => {
    const h = () => {
      client.request('POST', `/containers/${encodeURIComponent(id)}/kill`, { query: { signal: sig } }).catch(() => undefined);
    };
    process.on(sig, h);
    return [sig, h] as const;
  });
  return () => {
    for (const [sig, h] of handlers) process.off(sig, h);
  };
}

function readBody(res: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    let s = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => (s += d));
    res.once('end', () => resolve(s));
    res.once('error', reject);
  });
}

// ---------- run ----------

interface RunOptions {
  detach?: boolean;
  interactive?: boolean;
  tty?: boolean;
  rm?: boolean;
  name?: string;
  env?: string[];
  workdir?: string;
  user?: string;
  entrypoint?: string;
  label?: string[];
  network?: string;
  volume?: string[];
  hostname?: string;
  sigProxy?: boolean;
  publish?: string[];
  ip?: string;
  memory?: string;
  cpus?: string;
  rich?: boolean;
  richMode?: string;
  initscript?: string;
  priority?: string;
}

/** `-p [ip:][hostPort:]containerPort[/proto]` into docker's ExposedPorts and PortBindings. */
export function parsePublish(list: string[] | undefined): { exposed: Record<string, object>; bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> } {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  for (const p of list ?? []) {
    const m = /^(?:(?:\[([0-9a-fA-F:.]+)\]|(\d+\.\d+\.\d+\.\d+)):)?(?:(\d*):)?(\d+)(?:\/(tcp|udp|sctp))?$/.exec(p);
    if (!m) throw new Error(`invalid publish spec "${p}": use [ip:][hostPort:]containerPort[/protocol] (port ranges: use docker run)`);
    const key = `${m[4]}/${m[5] ?? 'tcp'}`;
    exposed[key] = {};
    (bindings[key] ??= []).push({ HostIp: m[1] ?? m[2] ?? '', HostPort: m[3] ?? '' });
  }
  return { exposed, bindings };
}

/** The create body for `run`: docker's Config with its HostConfig. */
export function runConfig(image: string, args: string[], o: RunOptions, consoleSize?: { h: number; w: number }): Record<string, unknown> {
  const attach = !o.detach;
  const hostConfig: Record<string, unknown> = { AutoRemove: !!o.rm };
  if (o.network) hostConfig.NetworkMode = o.network;
  if (o.volume && o.volume.length) hostConfig.Binds = o.volume;
  if (consoleSize) hostConfig.ConsoleSize = [consoleSize.h, consoleSize.w];
  const ports = parsePublish(o.publish);
  if (o.publish?.length) hostConfig.PortBindings = ports.bindings;
  if (o.memory !== undefined) hostConfig.Memory = parseBytes(o.memory);
  if (o.cpus !== undefined) {
    const n = Number(o.cpus);
    if (!(n > 0)) throw new Error(`invalid --cpus: ${o.cpus}`);
    hostConfig.NanoCpus = Math.round(n * 1e9);
  }
  const labels = parseLabels(o.label);
  // the engine turns the label into CPU shares, OOM score and blkio weight presets
  if (o.priority !== undefined) labels['com.sampan.priority'] = o.priority;
  const body: Record<string, unknown> = {
    Image: image,
    Tty: !!o.tty,
    OpenStdin: !!o.interactive,
    StdinOnce: !!o.interactive && attach,
    AttachStdin: !!o.interactive && attach,
    AttachStdout: attach,
    AttachStderr: attach,
    Env: parseEnv(o.env),
    Labels: labels,
    HostConfig: hostConfig,
  };
  if (o.publish?.length) body.ExposedPorts = ports.exposed;
  if (o.ip) body.NetworkingConfig = { EndpointsConfig: { [!o.network || o.network === 'default' ? 'bridge' : o.network]: { IPAMConfig: { IPv4Address: o.ip } } } };
  // PouchContainer's rich container; the engine checks the combination
  if (o.rich) body.Rich = true;
  if (o.richMode !== undefined) body.RichMode = o.richMode;
  if (o.initscript !== undefined) body.InitScript = o.initscript;
  if (args.length) body.Cmd = args;
  if (o.entrypoint !== undefined) body.Entrypoint = [o.entrypoint];
  if (o.workdir) body.WorkingDir = o.workdir;
  if (o.user) body.User = o.user;
  if (o.hostname) body.Hostname = o.hostname;
  return body;
}

async function run(image: string, args: string[], o: RunOptions, cmd: Command): Promise<void> {
  const client = clientFor(cmd);
  if (o.detach && o.rm === undefined) o.rm = false;
  if (o.tty && o.interactive && !o.detach && !process.stdin.isTTY) {
    throw new Error('the input device is not a TTY');
  }
  const consoleSize = o.tty ? terminalSize() : undefined;
  const created = await client.json<{ Id: string; Warnings?: string[] | null }>('POST', '/containers/create', {
    query: { name: o.name || undefined },
    body: runConfig(image, args, o, consoleSize),
  });
  for (const w of created.Warnings ?? []) process.stderr.write(`WARNING: ${w}\n`);
  const id = created.Id;
  const cpath = `/containers/${encodeURIComponent(id)}`;

  if (o.detach) {
    await client.request('POST', `${cpath}/start`);
    process.stdout.write(`${id}\n`);
    return;
  }

  const tty = !!o.tty;
  const sock = await client.hijack('POST', `${cpath}/attach`, {
    query: { stream: true, stdin: !!o.interactive, stdout: true, stderr: true },
  });
  // the engine answers the wait's head once the waiter is registered: then it is safe to start
  const waitRes = await client.stream('POST', `${cpath}/wait`, { query: { condition: o.rm ? 'removed' : 'next-exit' } });
  const waitBody = readBody(waitRes);
  waitBody.catch(() => undefined);

  const output = pumpOutput(sock, tty);
  output.catch(() => undefined);
  try {
    await client.request('POST', `${cpath}/start`);
  } catch (err) {
    sock.destroy();
    waitRes.destroy();
    // --rm: a container that never ran is removed too (the engine may have done it already)
    if (o.rm) await client.request('DELETE', cpath, { query: { force: true } }).catch(() => undefined);
    throw err;
  }

  const cleanups: Array<() => void> = [];
  if (tty) cleanups.push(followResize((h, w) => client.request('POST', `${cpath}/resize`, { query: { h, w } })));
  if (o.interactive) {
    if (tty) setRaw(true);
    cleanups.push(pumpInput(sock));
  }
  if (!tty && o.sigProxy !== false) cleanups.push(proxySignals(client, id));

  try {
    await output;
  } finally {
    for (const c of cleanups) c();
    setRaw(false);
  }

  let code = 0;
  try {
    const text = await waitBody;
    const lines = text.trim().split('\n').filter(Boolean);
    const last = JSON.parse(lines[lines.length - 1] ?? '{}') as {
      StatusCode?: number;
      Error?: { Message?: string } | null;
      error?: string;
      errorDetail?: { message?: string };
    };
    const msg = last.Error?.Message || last.errorDetail?.message || last.error;
    if (msg) process.stderr.write(`Error response from daemon: ${msg}\n`);
    code = typeof last.StatusCode === 'number' ? last.StatusCode : msg ? 125 : 0;
    if (code < 0) code = 125;
  } catch (err) {
    process.stderr.write(`Error: waiting for the container: ${(err as Error).message}\n`);
    code = 125;
  }
  await exitWith(code);
}

// ---------- logs ----------

async function logs(name: string, o: { follow?: boolean; tail?: string; timestamps?: boolean; since?: string; until?: string }, cmd: Command): Promise<void> {
  const client = clientFor(cmd);
  const info = await client.json<ContainerInspect>('GET', `/containers/${encodeURIComponent(name)}/json`);
  const res = await client.stream('GET', `/containers/${encodeURIComponent(info.Id)}/logs`, {
    query: {
      stdout: true,
      stderr: true,
      follow: o.follow ? true : undefined,
      tail: o.tail ?? 'all',
      timestamps: o.timestamps ? true : undefined,
      since: o.since,
      until: o.until,
    },
  });
  await pumpOutput(res, !!info.Config?.Tty);
}

// ---------- exec ----------

interface ExecOptions {
  interactive?: boolean;
  tty?: boolean;
  detach?: boolean;
  env?: string[];
  user?: string;
  workdir?: string;
  privileged?: boolean;
}

async function exec(container: string, args: string[], o: ExecOptions, cmd: Command): Promise<void> {
  const client = clientFor(cmd);
  if (args.length === 0) throw new Error('exec needs a command to run');
  if (o.tty && o.interactive && !o.detach && !process.stdin.isTTY) throw new Error('the input device is not a TTY');
  const consoleSize = o.tty ? terminalSize() : undefined;
  const cfg: Record<string, unknown> = {
    AttachStdin: !!o.interactive && !o.detach,
    AttachStdout: !o.detach,
    AttachStderr: !o.detach,
    Tty: !!o.tty,
    Cmd: args,
    Env: parseEnv(o.env),
  };
  if (o.user) cfg.User = o.user;
  if (o.workdir) cfg.WorkingDir = o.workdir;
  if (o.privileged) cfg.Privileged = true;
  if (consoleSize) cfg.ConsoleSize = [consoleSize.h, consoleSize.w];
  const created = await client.json<{ Id: string }>('POST', `/containers/${encodeURIComponent(container)}/exec`, { body: cfg });
  const epath = `/exec/${encodeURIComponent(created.Id)}`;
  if (o.detach) {
    await client.request('POST', `${epath}/start`, { body: { Detach: true, Tty: !!o.tty } });
    return;
  }
  const startBody: Record<string, unknown> = { Detach: false, Tty: !!o.tty };
  if (consoleSize) startBody.ConsoleSize = [consoleSize.h, consoleSize.w];
  const sock = await client.hijack('POST', `${epath}/start`, { body: startBody });
  const tty = !!o.tty;
  const output = pumpOutput(sock, tty);
  const cleanups: Array<() => void> = [];
  if (tty) cleanups.push(followResize((h, w) => client.request('POST', `${epath}/resize`, { query: { h, w } })));
  if (o.interactive) {
    if (tty) setRaw(true);
    cleanups.push(pumpInput(sock));
  }
  try {
    await output;
  } finally {
    for (const c of cleanups) c();
    setRaw(false);
  }
  // the exit code: the engine records it before it ends the stream; poll briefly in case it lags
  let code = 0;
  for (let i = 0; i < 50; i++) {
    const info = await client.json<{ Running?: boolean; ExitCode?: number | null }>('GET', `${epath}/json`);
    if (!info.Running || i === 49) {
      code = info.ExitCode ?? 0;
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await exitWith(code);
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
