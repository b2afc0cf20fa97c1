/**
 * Client commands for registries: pull, push, login, logout. Credentials live in ~/.sampan/config.json
 * (or $SAMPAN_CONFIG_DIR/config.json), mode 0600, in the docker config's "auths" shape; the engine only checks
 * them at login and receives them with each pull and push (X-Registry-Auth).
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import type { Readable } from 'node:stream';
import { Command, Option } from 'commander';
import cliProgress from 'cli-progress';
import { clientFor, withErrors } from '../client.js';
import { ApiError, jsonMessages } from '../../lib/engine-client.js';
import { STATUS } from '../../lib/http/status.js';

const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';

export interface ClientConfig {
  auths?: Record<string, { auth?: string; identitytoken?: string }>;
  [k: string]: unknown;
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.SAMPAN_CONFIG_DIR || path.join(os.homedir(), '.sampan'), 'config.json');
}

export async function readClientConfig(file = configPath()): Promise<ClientConfig> {
  try {
    const c = JSON.parse(await fs.readFile(file, 'utf8')) as ClientConfig;
    return c && typeof c === 'object' ? c : {};
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new Error(`reading ${file}: ${(err as Error).message}`);
  }
}

async function writeClientConfig(c: ClientConfig, file = configPath()): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  await fs.writeFile(tmp, `${JSON.stringify(c, null, '\t')}\n`, { mode: 0o600 });
  await fs.chmod(tmp, 0o600);
  await fs.rename(tmp, file);
}

/** The registry a reference names: "docker.io" unless its first component looks like a host. */
export function registryOf(ref: string): string {
  const noDigest = ref.split('@')[0]!;
  const slash = noDigest.indexOf('/');
  if (slash > 0) {
    const first = noDigest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost') return first === 'index.docker.io' ? 'docker.io' : first;
  }
  return 'docker.io';
}

/** The config key for a server: Docker Hub's historical URL, else the bare host[:port]. */
export function serverKey(server: string | undefined): string {
  const s = (server ?? '').trim().replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
  if (!s || s === 'docker.io' || s === 'index.docker.io' || s === 'registry-1.docker.io') return DOCKER_HUB_KEY;
  return s;
}

/** X-Registry-Auth for a registry from the stored credentials (undefined when there are none). */
export function authHeaderFor(c: ClientConfig, registry: string): string | undefined {
  const key = serverKey(registry);
  const auths = c.auths ?? {};
  const entry = auths[key] ?? Object.entries(auths).find(([k]) => serverKey(k) === key)?.[1];
  if (!entry) return undefined;
  const payload: Record<string, string> = { serveraddress: key };
  if (entry.identitytoken) payload.identitytoken = entry.identitytoken;
  if (entry.auth) {
    const dec = Buffer.from(entry.auth, 'base64').toString('utf8');
    const i = dec.indexOf(':');
    if (i > 0) {
      payload.username = dec.slice(0, i);
      payload.password = dec.slice(i + 1);
    }
  }
  return Buffer.from(JSON.stringify(payload)).toString('base64url');
}

/** "name[:tag|@digest]" → fromImage and tag as the engine API takes them. */
export function splitImageRef(ref: string): { name: string; tag: string } {
  const at = ref.indexOf('@');
  if (at >= 0) return { name: ref.slice(0, at), tag: ref.slice(at + 1) };
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > slash) return { name: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { name: ref, tag: '' };
}

function human(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${Number(v.toPrecision(3))}${units[i]}`;
}

/**
 * Show a progress stream: bars per layer on a terminal (cli-progress), status lines otherwise.
 * Returns the messages' last status; an error message in the stream is thrown.
 */
export async function renderProgress(stream: Readable, opts: { quiet?: boolean; tty?: boolean } = {}): Promise<void> {
  const tty = opts.tty ?? !!process.stdout.isTTY;
  // bars appear with the first layer; lines that come while they are drawn are printed once they stop
  let multi: cliProgress.MultiBar | undefined;
  const later: string[] = [];
  const bars_ = () =>
    (multi ??= new cliProgress.MultiBar(
      {
        stream: process.stdout,
        hideCursor: true,
        clearOnComplete: false,
        barsize: 40,
        fps: 10,
        format: (options, params, payload: { id: string; status: string; showBar: boolean; size: string }) => {
          if (!payload.showBar) return `${payload.id}: ${payload.status}`;
          const bar = cliProgress.Format.BarFormat(params.progress, options);
          return `${payload.id}: ${payload.status.padEnd(12)} ${bar} ${payload.size}`;
        },
      },
      cliProgress.Presets.shades_classic,
    ));
  const bars = new Map<string, cliProgress.SingleBar>();
  const lastStatus = new Map<string, string>();
  const say = (line: string) => {
    if (opts.quiet) return;
    if (multi) later.push(line);
    else process.stdout.write(`${line}\n`);
  };
  const useBars = tty && !opts.quiet;
  try {
    for await (const m of jsonMessages(stream)) {
      if (m.errorDetail?.message || m.error) throw new ApiError(STATUS.INTERNAL, m.errorDetail?.message || String(m.error));
      if (m.aux !== undefined || !m.status) continue;
      if (!m.id) {
        say(m.status);
        continue;
      }
      const cur = m.progressDetail?.current;
      const total = m.progressDetail?.total;
      const byteProgress = typeof cur === 'number' && typeof total === 'number' && total > 0;
      if (useBars) {
        const multi = bars_();
        let bar = bars.get(m.id);
        const payload = { id: m.id, status: m.status, showBar: byteProgress, size: byteProgress ? `${human(cur!)}/${human(total!)}` : '' };
        if (!bar) {
          bar = multi.create(byteProgress ? total! : 1, byteProgress ? cur! : 0, payload);
          bars.set(m.id, bar);
        } else if (byteProgress) {
          bar.setTotal(total!);
          bar.update(cur!, payload);
        } else {
          bar.update(payload);
        }
      } else if (!byteProgress && lastStatus.get(m.id) !== m.status) {
        say(`${m.id}: ${m.status}`);
      }
      lastStatus.set(m.id, m.status);
    }
  } finally {
    multi?.stop();
    for (const l of later) process.stdout.write(`${l}\n`);
  }
}

async function pull(ref: string, o: { quiet?: boolean; platform?: string }, cmd: Command): Promise<void> {
  const client = clientFor(cmd);
  const { name, tag } = splitImageRef(ref);
  const auth = authHeaderFor(await readClientConfig(), registryOf(ref));
  const res = await client.stream('POST', '/images/create', {
    query: { fromImage: name, tag: tag || 'latest', platform: o.platform },
    headers: auth ? { 'X-Registry-Auth': auth } : {},
  });
  await renderProgress(res, { quiet: o.quiet });
  if (o.quiet) process.stdout.write(`${tag && tag.startsWith('sha256:') ? `${name}@${tag}` : `${name}:${tag || 'latest'}`}\n`);
}

async function push(ref: string, o: { quiet?: boolean; allTags?: boolean }, cmd: Command): Promise<void> {
  const client = clientFor(cmd);
  const { name, tag } = splitImageRef(ref);
  if (tag.startsWith('sha256:')) throw new Error(`cannot push a digest reference: ${ref}`);
  if (o.allTags && tag) throw new Error('tag can\'t be used with --all-tags/-a');
  const auth = authHeaderFor(await readClientConfig(), registryOf(ref));
  const res = await client.stream('POST', `/images/${name}/push`, {
    query: { tag: o.allTags ? undefined : tag || 'latest' },
    headers: { 'X-Registry-Auth': auth ?? Buffer.from('{}').toString('base64url') },
  });
  await renderProgress(res, { quiet: o.quiet });
}

function prompt(question: string, hidden = false): Promise<string> {
  return new Promise((resolve, reject) => {
    if (!process.stdin.isTTY) return reject(new Error('Cannot perform an interactive login from a non TTY device'));
    const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: true });
    if (hidden) {
      // echo nothing while the password is typed
      (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = (s: string) => {
        if (s.startsWith(question)) process.stdout.write(question);
      };
    }
    rl.question(question, (answer) => {
      rl.close();
      if (hidden) process.stdout.write('\n');
      resolve(answer);
    });
  });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function login(server: string | undefined, o: { username?: string; password?: string; passwordStdin?: boolean }, cmd: Command): Promise<void> {
  if (o.password && o.passwordStdin) throw new Error('--password and --password-stdin are mutually exclusive');
  let username = o.username?.trim();
  let password = o.password;
  if (o.passwordStdin) {
    if (!username) throw new Error('Must provide --username with --password-stdin');
    password = await readStdin();
  }
  if (o.password) process.stderr.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
  if (!username) username = (await prompt('Username: ')).trim();
  if (!username) throw new Error('Username is required');
  if (!password) password = await prompt('Password: ', true);
  if (!password) throw new Error('Password is required');
  const key = serverKey(server);
  const client = clientFor(cmd);
  const r = await client.json<{ Status?: string; IdentityToken?: string }>('POST', '/auth', {
    body: { username, password, serveraddress: key },
  });
  const file = configPath();
  const c = await readClientConfig(file);
  c.auths ??= {};
  c.auths[key] = r?.IdentityToken
    ? { auth: Buffer.from(`${username}:`).toString('base64'), identitytoken: r.IdentityToken }
    : { auth: Buffer.from(`${username}:${password}`).toString('base64') };
  await writeClientConfig(c, file);
  process.stdout.write(`${r?.Status || 'Login Succeeded'}\n`);
}

async function logout(server: string | undefined): Promise<void> {
  const key = serverKey(server);
  const file = configPath();
  const c = await readClientConfig(file);
  const found = Object.keys(c.auths ?? {}).filter((k) => serverKey(k) === key);
  if (found.length === 0) {
    process.stdout.write(`Not logged in to ${key}\n`);
    return;
  }
  for (const k of found) delete c.auths![k];
  await writeClientConfig(c, file);
  process.stdout.write(`Removing login credentials for ${key}\n`);
}

export function registerRegistryClientCommands(program: Command): void {
  const hostOpt = () => new Option('-H, --host <url>', 'engine address (unix:///path or tcp://host:port)').hideHelp();

  program
    .command('pull')
    .description('Download an image from a registry')
    .argument('<image>', 'NAME[:TAG|@DIGEST]')
    .option('-q, --quiet', 'suppress verbose output')
    .option('--platform <platform>', 'platform (only linux/amd64)')
    .addOption(hostOpt())
    .action(withErrors((ref: string, o: { quiet?: boolean; platform?: string }, cmd: Command) => pull(ref, o, cmd)));

  program
    .command('push')
    .description('Upload an image to a registry')
    .argument('<image>', 'NAME[:TAG]')
    .option('-a, --all-tags', 'push all tags of the repository')
    .option('-q, --quiet', 'suppress verbose output')
    .addOption(hostOpt())
    .action(withErrors((ref: string, o: { quiet?: boolean; allTags?: boolean }, cmd: Command) => push(ref, o, cmd)));

  program
    .command('login')
    .description('Log in to a registry (the credentials are checked by the engine and kept in ~/.sampan/config.json)')
    .argument('[server]', 'registry host[:port] (default Docker Hub)')
    .option('-u, --username <name>', 'username')
    .option('-p, --password <password>', 'password')
    .option('--password-stdin', 'take the password from stdin')
    .addOption(hostOpt())
    .action(withErrors((server: string | undefined, o: { username?: string; password?: string; passwordStdin?: boolean }, cmd: Command) => login(server, o, cmd)));

  program
    .command('logout')
    .description('Log out from a registry (forget its stored credentials)')
    .argument('[server]', 'registry host[:port] (default Docker Hub)')
    .addOption(hostOpt())
    .action(withErrors((server: string | undefined) => logout(server)));
}
