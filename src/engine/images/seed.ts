/**
 * The built-in base image: busybox:latest made from the host's statically linked busybox (Debian's busybox-static),
 * as a docker-archive tar that `docker load` accepts. Deterministic: the same binary always gives the same image ID.
 */
import { promises as fs } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import tar from 'tar-stream';
import { hexOf, sha256 } from '../../lib/digest.js';
import type { ImageConfig } from '../../lib/oci.js';

const run = promisify(execFile);

/** Every entry and the config are dated to this instant so the image ID depends only on the binary. */
const SEED_TIME = new Date('2024-01-01T00:00:00Z');

interface Entry {
  header: Partial<tar.Header> & { name: string };
  body?: Buffer;
}

/** Pack entries into an in-memory tar. */
export async function packTar(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const e of entries) {
    const h = { uid: 0, gid: 0, mtime: SEED_TIME, ...e.header };
    if (e.body) pack.entry(h, e.body);
    else pack.entry(h);
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  'daemon:x:1:1:daemon:/usr/sbin:/bin/false',
  'nobody:x:65534:65534:nobody:/home:/bin/false',
  '',
].join('\n');

const GROUP = ['root:x:0:', 'daemon:x:1:', 'users:x:100:', 'nogroup:x:65534:', ''].join('\n');

const DIRS: Array<[string, number]> = [
  ['bin', 0o755],
  ['dev', 0o755],
  ['etc', 0o755],
  ['home', 0o755],
  ['proc', 0o555],
  ['root', 0o700],
  ['sbin', 0o755],
  ['sys', 0o555],
  ['tmp', 0o1777],
  ['usr', 0o755],
  ['usr/bin', 0o755],
  ['usr/sbin', 0o755],
  ['var', 0o755],
  ['var/spool', 0o755],
  ['var/spool/mail', 0o755],
];

/** The layer tar: directories, /bin/busybox, one symlink per applet, passwd and group. */
async function buildLayer(busybox: string): Promise<Buffer> {
  const binary = await fs.readFile(busybox);
  let listing: string;
  try {
    ({ stdout: listing } = await run(busybox, ['--list-full'], { maxBuffer: 4 << 20 }));
  } catch (err) {
    throw new Error(`${busybox} --list-full failed (${(err as Error).message}); install Debian's busybox-static: apt-get install busybox-static`);
  }
  const applets = [
    ...new Set(
      listing
        .split('\n')
        .map((l) => l.trim().replace(/^\/+/, ''))
        .filter((l) => l && !l.split('/').includes('..') && l !== 'bin/busybox'),
    ),
  ].sort();
  const dirModes = new Map(DIRS);
  for (const a of applets) {
    for (let d = path.posix.dirname(a); d !== '.'; d = path.posix.dirname(d)) if (!dirModes.has(d)) dirModes.set(d, 0o755);
  }
  const entries: Entry[] = [];
  for (const d of [...dirModes.keys()].sort()) entries.push({ header: { name: `${d}/`, type: 'directory', mode: dirModes.get(d)! } });
  entries.push({ header: { name: 'bin/busybox', type: 'file', mode: 0o755 }, body: binary });
  for (const a of applets) entries.push({ header: { name: a, type: 'symlink', linkname: '/bin/busybox', mode: 0o777 } });
  entries.push({ header: { name: 'etc/passwd', type: 'file', mode: 0o644 }, body: Buffer.from(PASSWD) });
  entries.push({ header: { name: 'etc/group', type: 'file', mode: 0o644 }, body: Buffer.from(GROUP) });
  return packTar(entries);
}

/**
 * A docker-archive tar (legacy layout: manifest.json, `<hex>.json` config, `<dir>/layer.tar`) holding busybox:latest.
 */
export async function buildBusyboxArchive(busybox = '/bin/busybox'): Promise<Buffer> {
  try {
    const st = await fs.stat(busybox);
    if (!st.isFile()) throw new Error('not a file');
  } catch {
    throw new Error(`${busybox} not found: the built-in busybox image needs Debian's static busybox (apt-get install busybox-static)`);
  }
  const layer = await buildLayer(busybox);
  const diffId = sha256(layer);
  const created = SEED_TIME.toISOString();
  const config: ImageConfig = {
    architecture: 'amd64',
    os: 'linux',
    created,
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: ['sh'],
    },
    rootfs: { type: 'layers', diff_ids: [diffId] },
    history: [{ created, created_by: 'sampan image seed: /bin/busybox from busybox-static, one symlink per applet', comment: 'busybox-static' }],
  };
  // compact JSON as the image store writes it, so the image ID is this file's digest
  const cfgBytes = Buffer.from(JSON.stringify(config));
  const cfgHex = hexOf(sha256(cfgBytes));
  const layerDir = hexOf(sha256(`${diffId} layer`));
  const manifest = [{ Config: `${cfgHex}.json`, RepoTags: ['busybox:latest'], Layers: [`${layerDir}/layer.tar`] }];
  const repositories = { busybox: { latest: layerDir } };
  const v1 = { id: layerDir, created, os: 'linux', architecture: 'amd64' };
  return packTar([
    { header: { name: `${layerDir}/`, type: 'directory', mode: 0o755 } },
    { header: { name: `${layerDir}/VERSION`, type: 'file', mode: 0o644 }, body: Buffer.from('1.0') },
    { header: { name: `${layerDir}/json`, type: 'file', mode: 0o644 }, body: Buffer.from(JSON.stringify(v1)) },
    { header: { name: `${layerDir}/layer.tar`, type: 'file', mode: 0o644 }, body: layer },
    { header: { name: `${cfgHex}.json`, type: 'file', mode: 0o644 }, body: cfgBytes },
    { header: { name: 'manifest.json', type: 'file', mode: 0o644 }, body: Buffer.from(JSON.stringify(manifest)) },
    { header: { name: 'repositories', type: 'file', mode: 0o644 }, body: Buffer.from(JSON.stringify(repositories)) },
  ]);
}
