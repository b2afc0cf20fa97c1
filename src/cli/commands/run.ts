/**
 * The client commands that stream a container's stdio: run, exec and logs (a terminal in raw mode, resizes,
 * signals proxied).
 */
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { Command } from 'commander';
import { clientFor, exitWith } from '../client.js';
import { EngineClient, demux } from '../../lib/engine-client.js';
import { parseBytes } from '../../lib/units.js';
import type { ContainerInspect } from '../../lib/docker-types.js';
import { parseEnv, parseLabels } from './options.js';
import { runReplicas } from './batch.js';

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

export interface RunOptions {
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
  /** A batch of identical replicas through a cluster manager. */
  replicas?: string;
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

export async function run(image: string, args: string[], o: RunOptions, cmd: Command): Promise<void> {
  if (o.replicas !== undefined) {
    if (!o.detach) throw new Error('--replicas needs -d: a batch runs detached');
    await runReplicas(runConfig(image, args, o), o.name, Number(o.replicas), cmd);
    return;
  }
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

export async function logs(name: string, o: { follow?: boolean; tail?: string; timestamps?: boolean; since?: string; until?: string }, cmd: Command): Promise<void> {
  const client = clientFor(cmd);
  const info = await client.json<ContainerInspect<{ Tty?: boolean }>>('GET', `/containers/${encodeURIComponent(name)}/json`);
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

export interface ExecOptions {
  interactive?: boolean;
  tty?: boolean;
  detach?: boolean;
  env?: string[];
  user?: string;
  workdir?: string;
  privileged?: boolean;
}

export async function exec(container: string, args: string[], o: ExecOptions, cmd: Command): Promise<void> {
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
