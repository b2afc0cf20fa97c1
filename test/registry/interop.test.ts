/**
 * Interop with a real client nobody here wrote: skopeo copies an OCI image (built with umoci from
 * Debian's busybox-static) into `sampan registry` and back out, by tag and by digest, and the digests
 * survive the round trip. Also a Docker schema 2 conversion, a copy between repositories (blob mount),
 * tag listing and delete through skopeo.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DOCKER_MANIFEST, OCI_MANIFEST, TestRegistry, makeBusyboxLayout, must, sha256 } from './harness.js';

let reg: TestRegistry;
let work: string;
let layout: string;


const skopeo = (...args: string[]) => must('skopeo', args);


before(async () => {
  reg = await TestRegistry.start();
  work = reg.dir;
  layout = await makeBusyboxLayout(work);
});
after(async () => {
  await reg?.cleanup();
});

const inspectDigest = async (ref: string, tlsFlag = true) => (await skopeo('inspect', ...(tlsFlag ? ['--tls-verify=false'] : []), '--format', '{{.Digest}}', ref)).stdout.trim();

describe('skopeo', () => {
  let pushed = '';

  it('copies an OCI image in by tag; the digest is the layout\'s', async () => {
    const local = await inspectDigest(`oci:${layout}:1`, false);
    await skopeo('copy', '-q', '--dest-tls-verify=false', `oci:${layout}:1`, `docker://${reg.hostPort}/interop/busybox:1`);
    pushed = await inspectDigest(`docker://${reg.hostPort}/interop/busybox:1`);
    assert.equal(pushed, local);
    // the exact bytes: what the registry serves hashes to that digest
    const raw = (await reg.req('GET', '/v2/interop/busybox/manifests/1')).body;
    assert.equal(sha256(raw), pushed);
    assert.equal((await reg.req('GET', '/v2/interop/busybox/manifests/1')).headers['content-type'], OCI_MANIFEST);
  });

  it('copies it out by digest and by tag, digests equal', async () => {
    const byDigest = path.join(work, 'back-digest');
    await skopeo('copy', '-q', '--src-tls-verify=false', `docker://${reg.hostPort}/interop/busybox@${pushed}`, `oci:${byDigest}:1`);
    assert.equal(await inspectDigest(`oci:${byDigest}:1`, false), pushed);
    const byTag = path.join(work, 'back-tag');
    await skopeo('copy', '-q', '--src-tls-verify=false', `docker://${reg.hostPort}/interop/busybox:1`, `oci:${byTag}:x`);
    assert.equal(await inspectDigest(`oci:${byTag}:x`, false), pushed);
    // and the layer bytes came back whole: the layouts hold the same blobs
    const blobs = async (dir: string) => (await fs.readdir(path.join(dir, 'blobs', 'sha256'))).sort();
    const orig = await blobs(layout);
    for (const b of await blobs(byDigest)) assert.ok(orig.includes(b), `blob ${b} not in the original layout`);
  });

  it('pushes a Docker schema 2 conversion and pulls it back by digest', async () => {
    await skopeo('copy', '-q', '--dest-tls-verify=false', '--format', 'v2s2', `oci:${layout}:1`, `docker://${reg.hostPort}/interop/busybox:docker`);
    const g = await reg.req('GET', '/v2/interop/busybox/manifests/docker');
    assert.equal(g.headers['content-type'], DOCKER_MANIFEST);
    const d = await inspectDigest(`docker://${reg.hostPort}/interop/busybox:docker`);
    assert.equal(d, sha256(g.body));
    const out = path.join(work, 'docker-back');
    await skopeo('copy', '-q', '--src-tls-verify=false', `docker://${reg.hostPort}/interop/busybox@${d}`, `dir:${out}`);
    assert.equal(sha256(await fs.readFile(path.join(out, 'manifest.json'))), d);
  });

  it('copies between repositories of the registry (blob mount) and lists tags', async () => {
    await skopeo('copy', '-q', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${reg.hostPort}/interop/busybox:1`, `docker://${reg.hostPort}/interop/copy:latest`);
    assert.equal(await inspectDigest(`docker://${reg.hostPort}/interop/copy:latest`), pushed);
    // skopeo mounted the layers from interop/busybox rather than uploading them again
    const mounts = reg.log.split('\n').filter((l) => l.includes('"route":"uploads"') && l.includes('mount=') && l.includes('"status":201'));
    assert.ok(mounts.length >= 1, `no successful blob mount in the log:\n${reg.log.slice(-3000)}`);
    const tags = JSON.parse((await skopeo('list-tags', '--tls-verify=false', `docker://${reg.hostPort}/interop/busybox`)).stdout) as { Tags: string[] };
    assert.deepEqual(tags.Tags.sort(), ['1', 'docker']);
  });

  it('deletes through skopeo', async () => {
    await skopeo('delete', '--tls-verify=false', `docker://${reg.hostPort}/interop/copy:latest`);
    const r = await reg.req('GET', '/v2/interop/copy/manifests/latest');
    assert.equal(r.status, 404);
    // the same image in the other repository is untouched
    assert.equal((await reg.req('GET', `/v2/interop/busybox/manifests/${pushed}`)).status, 200);
  });
});
