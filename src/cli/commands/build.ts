/** `sampan build`: a directory (with its .dockerignore applied) sent as a tar to POST /build, output as dockerd's. */
import { promises as fs, createReadStream } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Command } from 'commander';
import type tar from 'tar-stream';
import { clientFor, exitWith, withErrors } from '../client.js';
import { ApiError, jsonMessages } from '../../lib/engine-client.js';
import { collect, hostOpt, parseLabels } from './options.js';
import { DockerIgnore } from '../../lib/dockerignore.js';
import { packEntry, packStream } from '../../lib/streams.js';
import { STATUS } from '../../lib/http/status.js';

interface BuildOptions {
  tag?: string[];
  file?: string;
  buildArg?: string[];
  target?: string;
  label?: string[];
  cache: boolean;
  pull?: boolean;
  rm: boolean;
  forceRm?: boolean;
  quiet?: boolean;
  network?: string;
  addHost?: string[];
  shmSize?: string;
  iidfile?: string;
}

/** The context as the docker CLI sends it: owners 0:0, ignored paths left out, the Dockerfile always in. */
export async function packContext(dir: string, dockerfile: { name: string; text?: string }): Promise<Readable> {
  const ignoreText = await fs.readFile(path.join(dir, '.dockerignore'), 'utf8').catch(() => '');
  const ig = DockerIgnore.parse(ignoreText);
  const keep = new Set([dockerfile.name, '.dockerignore']);
  const walk = async (pack: tar.Pack, rel: string): Promise<void> => {
    for (const name of (await fs.readdir(path.join(dir, rel))).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = path.join(dir, r);
      const st = await fs.lstat(abs);
      const ignored = ig.ignores(r) && !keep.has(r);
      if (ignored && !(st.isDirectory() && ig.mustWalk(r))) continue;
      const common = { name: r, mode: st.mode & 0o7777, mtime: st.mtime, uid: 0, gid: 0 };
      if (st.isDirectory()) {
        if (!ignored) await packEntry(pack, { ...common, type: 'directory' });
        await walk(pack, r);
      } else if (st.isSymbolicLink()) await packEntry(pack, { ...common, type: 'symlink', linkname: await fs.readlink(abs) });
      else if (st.isFile()) await packEntry(pack, { ...common, type: 'file', size: st.size }, createReadStream(abs));
    }
  };
  return packStream(async (pack) => {
    await walk(pack, '');
    if (dockerfile.text !== undefined) await packEntry(pack, { name: dockerfile.name, type: 'file', mode: 0o644, uid: 0, gid: 0 }, Buffer.from(dockerfile.text));
  });
}

async function build(context: string, o: BuildOptions, cmd: Command): Promise<void> {
  const dir = path.resolve(context);
  if (!(await fs.stat(dir).catch(() => undefined))?.isDirectory()) throw new Error(`unable to prepare context: path "${context}" not found`);
  // a Dockerfile outside the context (or on stdin) travels inside it under a name of its own, as the docker CLI does
  let dockerfile = { name: 'Dockerfile' } as { name: string; text?: string };
  if (o.file === '-') dockerfile = { name: `.dockerfile.${randomBytes(10).toString('hex')}`, text: await readStdin() };
  else if (o.file) {
    const abs = path.resolve(o.file);
    const rel = path.relative(dir, abs);
    if (rel.startsWith('..') || path.isAbsolute(rel)) dockerfile = { name: `.dockerfile.${randomBytes(10).toString('hex')}`, text: await fs.readFile(abs, 'utf8') };
    else dockerfile = { name: rel.split(path.sep).join('/') };
  }
  const buildArgs: Record<string, string | null> = {};
  for (const a of o.buildArg ?? []) {
    const i = a.indexOf('=');
    if (i < 0) buildArgs[a] = process.env[a] ?? null;
    else buildArgs[a.slice(0, i)] = a.slice(i + 1);
  }
  const q = new URLSearchParams();
  for (const t of o.tag ?? []) q.append('t', t);
  const set = (k: string, v: string | boolean | undefined) => v !== undefined && v !== '' && q.set(k, typeof v === 'boolean' ? (v ? '1' : '0') : v);
  set('dockerfile', dockerfile.name);
  set('buildargs', JSON.stringify(buildArgs));
  set('labels', JSON.stringify(parseLabels(o.label)));
  set('target', o.target);
  set('nocache', !o.cache);
  set('pull', o.pull);
  set('rm', o.rm);
  set('forcerm', o.forceRm);
  set('q', o.quiet);
  set('networkmode', o.network);
  set('extrahosts', o.addHost?.join(','));
  set('shmsize', o.shmSize);
  const client = clientFor(cmd);
  const body = await packContext(dir, dockerfile);
  const res = await client.stream('POST', `/build?${q}`, { body, headers: { 'Content-Type': 'application/x-tar' } });
  let id = '';
  for await (const msg of jsonMessages(res)) {
    if (msg.errorDetail || msg.error) {
      process.stderr.write(`${msg.errorDetail?.message ?? msg.error}\n`);
      await exitWith(1);
    }
    if (typeof msg.aux?.ID === 'string') id = msg.aux.ID;
    if (msg.stream) process.stdout.write(msg.stream);
    else if (msg.status && !o.quiet && !msg.progress) process.stdout.write(`${msg.id ? `${msg.id}: ` : ''}${msg.status}\n`);
  }
  if (!id) throw new ApiError(STATUS.INTERNAL, 'the engine ended the build without an image ID');
  if (o.iidfile) await fs.writeFile(o.iidfile, id);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export function registerBuild(program: Command): void {
  hostOpt(
    program
      .command('build')
      .description('Build an image from a Dockerfile (the classic builder: each step an image, cached)')
      .argument('<context>', 'the build context directory')
      .option('-t, --tag <name:tag>', 'name and optionally a tag for the image (repeatable)', collect)
      .option('-f, --file <path>', "the Dockerfile (default: 'PATH/Dockerfile'; '-' reads it from stdin)")
      .option('--build-arg <k=v>', 'set a build-time variable (repeatable)', collect)
      .option('--target <stage>', 'build this stage and what it needs, and stop')
      .option('--label <k=v>', 'set metadata on the image (repeatable)', collect)
      .option('--no-cache', 'do not use the step cache')
      .option('--pull', 'always pull newer versions of the base images')
      .option('--no-rm', 'keep intermediate containers after a successful build')
      .option('--force-rm', 'always remove intermediate containers')
      .option('-q, --quiet', 'print only the image ID')
      .option('--network <mode>', 'network for RUN: default, none or host')
      .option('--add-host <host:ip>', 'add a host to /etc/hosts of RUN containers (repeatable)', collect)
      .option('--shm-size <bytes>', 'size of /dev/shm for RUN containers')
      .option('--iidfile <file>', 'write the image ID to the file'),
  ).action(withErrors((context: string, o: BuildOptions, cmd: Command) => build(context, o, cmd)));
}
