import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import tar from 'tar-stream';
import { TestEngine, runCmd } from '../harness.js';

let e: TestEngine;
let work: string;
let busyboxId: string;

before(async () => {
  e = await TestEngine.start();
  work = path.join(e.dir, 'work');
  await fs.mkdir(work);
  busyboxId = (await e.docker(['image', 'inspect', '-f', '{{.Id}}', 'busybox'])).stdout.trim();
});
after(async () => {
  await e?.cleanup();
});

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Every entry of a tar, name → content. */
async function untar(buf: Buffer): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const ex = tar.extract();
  const done = (async () => {
    for await (const entry of ex) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      out.set(entry.header.name, Buffer.concat(chunks));
    }
  })();
  ex.end(buf);
  await done;
  return out;
}

/** An in-memory tar of the given entries. */
async function packTar(entries: Array<{ name: string; body?: Buffer | string; type?: 'file' | 'directory' | 'symlink'; linkname?: string }>): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const en of entries) {
    if (en.body !== undefined) pack.entry({ name: en.name, mode: 0o644 }, Buffer.from(en.body));
    else pack.entry({ name: en.name, type: en.type ?? 'directory', linkname: en.linkname, mode: 0o755 });
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

/** A rootfs tar holding only a static busybox, made with tar(1) as a user would. */
async function rootfsTar(name: string): Promise<string> {
  const dir = path.join(work, `${name}-rootfs`);
  await fs.mkdir(path.join(dir, 'bin'), { recursive: true });
  await fs.mkdir(path.join(dir, 'tmp'), { recursive: true });
  await fs.copyFile('/bin/busybox', path.join(dir, 'bin/busybox'));
  await fs.chmod(path.join(dir, 'bin/busybox'), 0o755);
  const file = path.join(work, `${name}.tar`);
  const r = await runCmd('tar', ['-C', dir, '-cf', file, '.']);
  assert.equal(r.code, 0, r.stderr);
  return file;
}

const lines = (s: string) => s.split('\n').filter(Boolean);

test('docker images lists the seeded busybox; inspect shows its config, layers and platform', async () => {
  const ls = await e.docker(['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']);
  assert.equal(ls.code, 0, ls.stderr);
  assert.deepEqual(lines(ls.stdout), [`busybox:latest ${busyboxId.slice(7, 19)}`]);
  const table = await e.docker(['images']);
  assert.match(table.stdout, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE\n/);
  assert.match(table.stdout, /\nbusybox\s+latest\s+[a-f0-9]{12}\s/);

  const insp = await e.docker(['image', 'inspect', 'busybox']);
  assert.equal(insp.code, 0, insp.stderr);
  const [img] = JSON.parse(insp.stdout) as Array<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.match(img!.Id, /^sha256:[a-f0-9]{64}$/);
  assert.deepEqual(img!.RepoTags, ['busybox:latest']);
  assert.deepEqual(img!.Config.Cmd, ['sh']);
  assert.equal(img!.Architecture, 'amd64');
  assert.equal(img!.Os, 'linux');
  assert.equal(img!.RootFS.Type, 'layers');
  assert.equal(img!.RootFS.Layers.length, 1);
  assert.match(img!.RootFS.Layers[0], /^sha256:[a-f0-9]{64}$/);
  assert.ok(img!.Size > 0);

  // the ID is the digest of the config, and the config's diff IDs are RootFS.Layers (checked on the saved archive)
  const savedFile = path.join(work, 'inspect.tar');
  const r = await e.docker(['save', '-o', savedFile, 'busybox']);
  assert.equal(r.code, 0, r.stderr);
  const files = await untar(await fs.readFile(savedFile));
  const manifest = JSON.parse(files.get('manifest.json')!.toString()) as Array<{ Config: string; RepoTags: string[]; Layers: string[] }>;
  assert.equal(manifest.length, 1);
  assert.deepEqual(manifest[0]!.RepoTags, ['busybox:latest']);
  const cfgBytes = files.get(manifest[0]!.Config)!;
  assert.equal(sha256(cfgBytes), img!.Id);
  const cfg = JSON.parse(cfgBytes.toString()) as { rootfs: { diff_ids: string[] }; architecture: string; os: string };
  assert.deepEqual(cfg.rootfs.diff_ids, img!.RootFS.Layers);
  // the layer in the archive is the uncompressed tar whose digest is the diff ID
  assert.equal(sha256(files.get(manifest[0]!.Layers[0]!)!), img!.RootFS.Layers[0]);

  assert.equal((await e.docker(['image', 'inspect', '-f', '{{.Id}}', busyboxId.slice(7, 19)])).stdout.trim(), busyboxId);
  const missing = await e.docker(['image', 'inspect', 'nosuchimage']);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /No such image: nosuchimage/);
});

test('docker history shows the image layer with its size and comment', async () => {
  const h = await e.docker(['history', 'busybox']);
  assert.equal(h.code, 0, h.stderr);
  const rows = lines(h.stdout);
  assert.match(rows[0]!, /^IMAGE\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT$/);
  assert.equal(rows.length, 2);
  assert.ok(rows[1]!.startsWith(busyboxId.slice(7, 19)), rows[1]);
  const f = await e.docker(['history', '--no-trunc', '--format', '{{.ID}}|{{.CreatedBy}}|{{.Comment}}', 'busybox']);
  const [id, by, comment] = f.stdout.trim().split('|');
  assert.equal(id, busyboxId);
  assert.match(by!, /busybox/);
  assert.equal(comment, 'busybox-static');
});

test('docker tag adds a name; images and reference filters show it; rmi of one tag only untags', async () => {
  const t = await e.docker(['tag', 'busybox', 'mine:1']);
  assert.equal(t.code, 0, t.stderr);
  const ls = await e.docker(['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']);
  assert.deepEqual(lines(ls.stdout).sort(), [`busybox:latest ${busyboxId.slice(7, 19)}`, `mine:1 ${busyboxId.slice(7, 19)}`]);
  assert.deepEqual((JSON.parse((await e.docker(['image', 'inspect', 'mine:1'])).stdout) as Array<{ RepoTags: string[] }>)[0]!.RepoTags, ['busybox:latest', 'mine:1']);

  // a reference filter shows the image under the matching names only (as Docker does)
  const busy = await e.docker(['images', '--filter', 'reference=busy*', '--format', '{{.Repository}}:{{.Tag}}']);
  assert.equal(busy.code, 0, busy.stderr);
  assert.deepEqual(lines(busy.stdout), ['busybox:latest']);
  const mine = await e.docker(['images', '--filter', 'reference=mine:*', '--format', '{{.Repository}}:{{.Tag}}']);
  assert.deepEqual(lines(mine.stdout), ['mine:1']);
  assert.equal((await e.docker(['images', '-q', '--filter', 'reference=nothing*'])).stdout, '');
  // images REPO[:TAG] works too
  assert.deepEqual(lines((await e.docker(['images', 'mine', '--format', '{{.Repository}}:{{.Tag}}'])).stdout), ['mine:1']);

  const rmi = await e.docker(['rmi', 'mine:1']);
  assert.equal(rmi.code, 0, rmi.stderr);
  assert.equal(rmi.stdout, 'Untagged: mine:1\n');
  assert.deepEqual(lines((await e.docker(['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}'])).stdout), [`busybox:latest ${busyboxId.slice(7, 19)}`]);
  assert.equal((await e.docker(['run', '--rm', 'busybox', 'echo', 'still-here'])).stdout, 'still-here\n');
  const gone = await e.docker(['rmi', 'mine:1']);
  assert.notEqual(gone.code, 0);
  assert.match(gone.stderr, /No such image: mine:1/);
});

test('docker rmi refuses an image a container uses, even a stopped one; -f untags or deletes as Docker does', async () => {
  const c = await e.docker(['create', '--name', 'holder', 'busybox', 'true']);
  assert.equal(c.code, 0, c.stderr);
  const cid = c.stdout.trim();
  const byName = await e.docker(['rmi', 'busybox']);
  assert.notEqual(byName.code, 0);
  assert.match(byName.stderr, /conflict/);
  assert.ok(byName.stderr.includes(cid.slice(0, 12)), byName.stderr);
  const byId = await e.docker(['rmi', busyboxId.slice(7, 19)]);
  assert.notEqual(byId.code, 0);
  assert.match(byId.stderr, /must be forced/);
  assert.match(byId.stderr, new RegExp(`stopped container ${cid.slice(0, 12)}`));
  // the container ran and exited: still a user of the image
  assert.equal((await e.docker(['start', '-a', 'holder'])).code, 0);
  assert.match((await e.docker(['rmi', 'busybox'])).stderr, new RegExp(cid.slice(0, 12)));
  assert.equal((await e.docker(['images', '-q', 'busybox'])).stdout.trim(), busyboxId.slice(7, 19));

  // a running container: -f by ID cannot delete it; -f by name only untags it and the container runs on
  const run = await e.docker(['run', '-d', '--name', 'runner', 'busybox', 'sleep', '300']);
  assert.equal(run.code, 0, run.stderr);
  const rid = run.stdout.trim();
  const hard = await e.docker(['rmi', '-f', busyboxId.slice(7, 19)]);
  assert.notEqual(hard.code, 0);
  assert.match(hard.stderr, new RegExp(`cannot be forced\\) - image is being used by running container ${rid.slice(0, 12)}`));
  const untag = await e.docker(['rmi', '-f', 'busybox']);
  assert.equal(untag.code, 0, untag.stderr);
  assert.equal(untag.stdout, 'Untagged: busybox:latest\n');
  assert.deepEqual(lines((await e.docker(['images', '-a', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}'])).stdout), [`<none>:<none> ${busyboxId.slice(7, 19)}`]);
  assert.equal((await e.docker(['exec', 'runner', 'echo', 'alive'])).stdout, 'alive\n');
  assert.equal((await e.docker(['tag', busyboxId, 'busybox:latest'])).code, 0);
  assert.equal((await e.docker(['rm', '-f', 'runner', 'holder'])).code, 0);

  // only stopped containers: -f deletes the image (Docker's behaviour), the container stays
  const file = await rootfsTar('victim');
  const imp = await e.docker(['import', file, 'victim:1']);
  assert.equal(imp.code, 0, imp.stderr);
  const vid = imp.stdout.trim();
  const vc = await e.docker(['create', '--name', 'vuser', 'victim:1', 'busybox', 'true']);
  assert.equal(vc.code, 0, vc.stderr);
  assert.match((await e.docker(['rmi', 'victim:1'])).stderr, /conflict: unable to remove repository reference "victim:1" \(must force\)/);
  const forced = await e.docker(['rmi', '-f', 'victim:1']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(forced.stdout, `Untagged: victim:1\nDeleted: ${vid}\n`);
  assert.equal((await e.docker(['images', '-aq', '--no-trunc'])).stdout.trim(), busyboxId);
  assert.match((await e.docker(['ps', '-a', '--format', '{{.Names}}'])).stdout, /vuser/);
  assert.equal((await e.docker(['rm', 'vuser'])).code, 0);
});

test('docker save, rmi, load gives back the same image ID, and it runs', async () => {
  const file = path.join(work, 'busybox.tar');
  const s = await e.docker(['save', 'busybox', '-o', file]);
  assert.equal(s.code, 0, s.stderr);
  assert.ok((await fs.stat(file)).size > 1024);
  const rmi = await e.docker(['rmi', 'busybox']);
  assert.equal(rmi.code, 0, rmi.stderr);
  assert.equal(rmi.stdout, `Untagged: busybox:latest\nDeleted: ${busyboxId}\n`);
  assert.equal((await e.docker(['images', '-aq'])).stdout, '');
  const noRun = await e.docker(['run', '--rm', 'busybox', 'true']);
  assert.notEqual(noRun.code, 0);

  const l = await e.docker(['load', '-i', file]);
  assert.equal(l.code, 0, l.stderr);
  assert.match(l.stdout, /Loaded image: busybox:latest/);
  assert.equal((await e.docker(['image', 'inspect', '-f', '{{.Id}}', 'busybox'])).stdout.trim(), busyboxId);
  assert.equal((await e.docker(['run', '--rm', 'busybox', 'echo', 'reloaded'])).stdout, 'reloaded\n');
  // loading it again changes nothing
  assert.equal((await e.docker(['load', '-q', '-i', file])).code, 0);
  assert.equal((await e.docker(['images', '-q', '--no-trunc'])).stdout.trim(), busyboxId);
});

test('docker import of a rootfs tar with --change CMD makes a runnable image', async () => {
  const file = await rootfsTar('imp');
  const imp = await e.docker(['import', '--change', 'CMD ["busybox","echo","imported"]', '--message', 'from a tarball', file, 'imported:1']);
  assert.equal(imp.code, 0, imp.stderr);
  const id = imp.stdout.trim();
  assert.match(id, /^sha256:[a-f0-9]{64}$/);
  const insp = JSON.parse((await e.docker(['image', 'inspect', 'imported:1'])).stdout) as Array<{ Id: string; Config: { Cmd: string[] }; Comment: string; Os: string; RootFS: { Layers: string[] } }>;
  assert.equal(insp[0]!.Id, id);
  assert.deepEqual(insp[0]!.Config.Cmd, ['busybox', 'echo', 'imported']);
  assert.equal(insp[0]!.Comment, 'from a tarball');
  assert.equal(insp[0]!.Os, 'linux');
  // the one layer is the tar as given (its digest is the diff ID)
  assert.deepEqual(insp[0]!.RootFS.Layers, [sha256(await fs.readFile(file))]);
  const r = await e.docker(['run', '--rm', 'imported:1']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'imported\n');
  // from stdin too
  const viaStdin = await e.docker(['import', '-', 'imported:stdin'], { input: await fs.readFile(file) });
  assert.equal(viaStdin.code, 0, viaStdin.stderr);
  assert.equal((await e.docker(['run', '--rm', 'imported:stdin', 'busybox', 'echo', 'stdin-ok'])).stdout, 'stdin-ok\n');
  assert.equal((await e.docker(['rmi', 'imported:stdin'])).code, 0);
  // a bad --change is refused and nothing is added
  const before = (await e.docker(['images', '-aq'])).stdout;
  const bad = await e.docker(['import', '--change', 'RUN echo no', file, 'bad:1']);
  assert.notEqual(bad.code, 0);
  assert.equal((await e.docker(['images', '-aq'])).stdout, before);
});

test('dangling and label filters; image prune removes dangling images, prune -a unused ones', async () => {
  const file = await rootfsTar('dangling');
  const imp = await e.docker(['import', '--change', 'LABEL team=core', file]);
  assert.equal(imp.code, 0, imp.stderr);
  const did = imp.stdout.trim();
  const dangling = await e.docker(['images', '--filter', 'dangling=true', '-q', '--no-trunc']);
  assert.equal(dangling.code, 0, dangling.stderr);
  assert.deepEqual(lines(dangling.stdout), [did]);
  const tagged = lines((await e.docker(['images', '--filter', 'dangling=false', '--format', '{{.Repository}}:{{.Tag}}'])).stdout).sort();
  assert.deepEqual(tagged, ['busybox:latest', 'imported:1']);
  assert.deepEqual(lines((await e.docker(['images', '--filter', 'label=team=core', '-q', '--no-trunc'])).stdout), [did]);
  assert.deepEqual(lines((await e.docker(['images', '--filter', 'label=team', '-q', '--no-trunc'])).stdout), [did]);
  assert.equal((await e.docker(['images', '--filter', 'label=team=other', '-q'])).stdout, '');

  const p = await e.docker(['image', 'prune', '-f']);
  assert.equal(p.code, 0, p.stderr);
  assert.match(p.stdout, new RegExp(`deleted: ${did}`));
  assert.equal((await e.docker(['images', '--filter', 'dangling=true', '-q'])).stdout, '');
  assert.deepEqual(lines((await e.docker(['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout).sort(), ['busybox:latest', 'imported:1']);
  // the pruned image shared its layer with imported:1, which still runs
  assert.equal((await e.docker(['run', '--rm', 'imported:1'])).stdout, 'imported\n');

  // -a: every image no container uses; busybox is kept by a (stopped) container
  assert.equal((await e.docker(['create', '--name', 'keeper', 'busybox', 'true'])).code, 0);
  const all = await e.docker(['image', 'prune', '-a', '-f']);
  assert.equal(all.code, 0, all.stderr);
  assert.match(all.stdout, /untagged: imported:1/);
  assert.deepEqual(lines((await e.docker(['images', '-a', '--format', '{{.Repository}}:{{.Tag}}'])).stdout), ['busybox:latest']);
  assert.equal((await e.docker(['rm', 'keeper'])).code, 0);
  assert.equal((await e.docker(['run', '--rm', 'busybox', 'echo', 'kept'])).stdout, 'kept\n');
});

/** A docker-archive tar with one image whose single layer is `layer`. */
async function dockerArchive(layer: Buffer, tag: string): Promise<Buffer> {
  const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
  const cfgName = `${sha256(cfg).slice(7)}.json`;
  return packTar([
    { name: cfgName, body: cfg },
    { name: 'layer/layer.tar', body: layer },
    { name: 'manifest.json', body: JSON.stringify([{ Config: cfgName, RepoTags: [tag], Layers: ['layer/layer.tar'] }]) },
  ]);
}

async function storeListing(): Promise<string[]> {
  const out: string[] = [];
  for (const sub of ['content', 'layers', 'images']) {
    const r = await runCmd('find', [path.join(e.dir, 'root', sub)]);
    out.push(...lines(r.stdout));
  }
  return out.sort();
}

test('POST /images/load refuses a layer with ../ in it, and a truncated archive, keeping nothing', async () => {
  // dockerd answers 200 and puts the error in the JSON stream
  const loadError = (r: { status: number; body: Buffer }) => {
    assert.equal(r.status, 200, r.body.toString());
    const line = r.body.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { error?: string }).find((m) => m.error);
    assert.ok(line?.error, r.body.toString());
    return line.error;
  };
  const imagesBefore = (await e.api('GET', '/images/json')).json();
  const storeBefore = await storeListing();

  // sanity: the same archive with a harmless layer loads
  const good = await e.api('POST', '/images/load?quiet=1', await dockerArchive(await packTar([{ name: 'ok.txt', body: 'fine\n' }]), 'fine:1'), { 'Content-Type': 'application/x-tar' });
  assert.equal(good.status, 200, good.body.toString());
  assert.match(good.body.toString(), /Loaded image: fine:1/);
  assert.equal((await e.docker(['rmi', 'fine:1'])).code, 0);

  const evilLayer = await packTar([{ name: 'etc/', type: 'directory' }, { name: '../evil', body: 'pwned\n' }]);
  const evil = await e.api('POST', '/images/load', await dockerArchive(evilLayer, 'evil:1'), { 'Content-Type': 'application/x-tar' });
  const msg = loadError(evil);
  assert.match(msg, /\.\.\/evil/);
  assert.match(msg, /escapes/);
  assert.deepEqual((await e.api('GET', '/images/json')).json(), imagesBefore);
  assert.equal((await e.api('GET', '/images/evil:1/json')).status, 404);
  assert.equal((await runCmd('find', [e.dir, '-name', 'evil'])).stdout, '');

  // a symlink out of the root, then a file through it
  const linkLayer = await packTar([{ name: 'up', type: 'symlink', linkname: '../../../../../../tmp' }, { name: 'up/sampan-evil-link', body: 'x' }]);
  const link = await e.api('POST', '/images/load', await dockerArchive(linkLayer, 'evil:2'), { 'Content-Type': 'application/x-tar' });
  loadError(link);
  assert.equal(await fs.stat('/tmp/sampan-evil-link').then(() => true, () => false), false);

  // a truncated archive (cut in the middle of the layer)
  const full = (await e.api('GET', '/images/busybox/get')).body;
  const cut = await e.api('POST', '/images/load', full.subarray(0, Math.floor(full.length / 2)), { 'Content-Type': 'application/x-tar' });
  assert.match(loadError(cut), /archive/);
  // not a tar at all
  const junk = await e.api('POST', '/images/load', Buffer.from('this is not a tar'), { 'Content-Type': 'application/x-tar' });
  loadError(junk);

  assert.deepEqual((await e.api('GET', '/images/json')).json(), imagesBefore);
  assert.deepEqual(await storeListing(), storeBefore);
});

test('DELETE /images of an unknown image is a 404 with a JSON message', async () => {
  const r = await e.api('DELETE', '/images/nosuch');
  assert.equal(r.status, 404);
  assert.match(r.headers['content-type'] ?? '', /application\/json/);
  assert.equal((r.json() as { message: string }).message, 'No such image: nosuch');
  const cli = await e.docker(['rmi', 'nosuch:2']);
  assert.notEqual(cli.code, 0);
  assert.match(cli.stderr, /No such image: nosuch:2/);
});
