/**
 * The Distribution API's endpoints: parse and validate the request, ask the Registry, render the
 * response the spec prescribes. No storage access and no rules here (those are in registry.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { finished } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { MediaType } from '../../lib/oci.js';
import { drained } from '../../lib/streams.js';
import { isCode } from '../../lib/errors.js';
import { contentRange, parseRange } from '../../lib/http/range.js';
import { regError, isKind, RegistryError } from '../errors.js';
import type { Action, Scope } from '../hooks.js';
import { checkDigest, isValidName, isSha256, isUploadId, parseReference } from '../names.js';
import type { ManifestEntry, Registry } from '../registry.js';
import type { UploadState } from '../storage/driver.js';
import type { Route } from './routes.js';
import { API_VERSION, API_VERSION_HEADER, contentLength, parseContentRange, parseN, uploadRange, type Headers } from './http.js';
import { hasBody, type Reply, type Req } from '../../lib/http/app.js';

export interface HandlerDeps {
  registry: Registry;
  authorize(req: IncomingMessage, scope: Scope | undefined): void | Promise<void>;
  countIn(n: number): void;
  countOut(n: number): void;
}

const PULL: Action[] = ['pull'];
const PUSH: Action[] = ['pull', 'push'];
const DELETE: Action[] = ['delete'];

const repoScope = (name: string, actions: Action[]): Scope => ({ type: 'repository', name, actions });

/** Prebuilt response headers of a manifest (flat [name, value, ...] form, reused on every hit). */
export interface ManifestWire {
  headers: string[];
}

export function manifestWire(e: ManifestEntry): ManifestWire {
  return (e.wire as ManifestWire | undefined) ?? (e.wire = {
    headers: [
      'Content-Type', e.mediaType,
      'Content-Length', String(e.bytes.length),
      'Docker-Content-Digest', e.digest,
      'ETag', `"${e.digest}"`,
      API_VERSION_HEADER, API_VERSION,
    ],
  });
}

export class Handlers {
  constructor(private readonly d: HandlerDeps) {}

  private get registry(): Registry {
    return this.d.registry;
  }

  private async auth(req: IncomingMessage, scope: Scope | undefined): Promise<void> {
    const r = this.d.authorize(req, scope);
    if (r) await r;
  }

  /** The endpoint of route `r`: its reply, or nothing when it wrote the response itself (manifests, blob bodies). */
  async handle(c: Req, r: Route): Promise<Reply | void> {
    switch (r.kind) {
      case 'base':
        await this.auth(c.req, undefined);
        return { status: 200, body: {} };
      case 'catalog':
        return this.catalog(c);
      case 'manifest':
        if (c.method === 'GET' || c.method === 'HEAD') return this.getManifest(c, r.name, r.ref);
        if (c.method === 'PUT') return this.putManifest(c, r.name, r.ref);
        return this.deleteManifest(c, r.name, r.ref);
      case 'blob':
        if (c.method === 'DELETE') return this.deleteBlob(c, r.name, r.digest);
        return this.getBlob(c, r.name, r.digest);
      case 'uploads':
        return this.startUpload(c, r.name);
      case 'upload':
        if (!isUploadId(r.id)) throw regError('BLOB_UPLOAD_UNKNOWN', `upload unknown: ${r.id.slice(0, 100)}`, { id: r.id.slice(0, 100) });
        if (c.method === 'GET') return this.uploadStatus(c, r.name, r.id);
        if (c.method === 'PATCH') return this.patchUpload(c, r.name, r.id);
        if (c.method === 'PUT') return this.putUpload(c, r.name, r.id);
        return this.cancelUpload(c, r.name, r.id);
      case 'tags':
        return this.tags(c, r.name);
      case 'referrers':
        return this.referrers(c, r.name, r.digest);
    }
  }

  // ---------------------------------------------------------------- manifests

  private sendManifest(c: Req, e: ManifestEntry): void {
    c.res.writeHead(200, manifestWire(e).headers);
    if (c.method === 'HEAD') return void c.res.end();
    c.res.end(e.bytes);
    this.d.countOut(e.bytes.length);
  }

  async getManifest(c: Req, name: string, ref: string): Promise<void> {
    await this.auth(c.req, repoScope(name, PULL));
    const e = await this.registry.getManifest(name, parseReference(ref));
    return this.sendManifest(c, e);
  }

  private async putManifest(c: Req, name: string, ref: string): Promise<Reply> {
    await this.auth(c.req, repoScope(name, PUSH));
    const reference = parseReference(ref, 'MANIFEST_INVALID');
    const limit = this.registry.maxManifestBytes;
    const bytes = await c.body(limit).catch((err: unknown) => {
      throw isCode(err, 'TOO_LARGE') ? regError('MANIFEST_TOO_LARGE', `manifest is over the ${limit} byte limit`, { limit }) : err;
    });
    this.d.countIn(bytes.length);
    const { digest, subject } = await this.registry.putManifest(name, reference, c.req.headers['content-type'], bytes);
    const headers: Headers = { Location: `/v2/${name}/manifests/${digest}`, 'Docker-Content-Digest': digest };
    if (subject) headers['OCI-Subject'] = subject;
    return { status: 201, headers };
  }

  private async deleteManifest(c: Req, name: string, ref: string): Promise<Reply> {
    await this.auth(c.req, repoScope(name, DELETE));
    await this.registry.deleteManifest(name, parseReference(ref));
    return { status: 202 };
  }

  // ---------------------------------------------------------------- blobs

  private async getBlob(c: Req, name: string, digestStr: string): Promise<Reply | void> {
    await this.auth(c.req, repoScope(name, PULL));
    const digest = checkDigest(digestStr);
    const found = await this.registry.statBlobOrUpstream(name, digest);
    if (this.registry.isMirror && c.method === 'GET') this.registry.mirrorBlobs['stream' in found ? 'misses' : 'hits']++;
    const size = found.size;
    const base: Headers = {
      'Content-Type': 'application/octet-stream',
      'Docker-Content-Digest': digest,
      ETag: `"${digest}"`,
      'Accept-Ranges': 'bytes',
      'Cache-Control': 'max-age=31536000',
    };
    if ('stream' in found) {
      // from the upstream (mirror): the whole blob, as it arrives
      base['Content-Length'] = size;
      if (c.method === 'HEAD') {
        found.stream.destroy();
        return { status: 200, headers: base };
      }
      return this.stream(c, 200, base, found.stream, size);
    }
    const range = parseRange(c.req.headers.range, size);
    if (range === 'unsatisfiable') throw regError('RANGE_NOT_SATISFIABLE', `range ${c.req.headers.range} is outside the blob's ${size} bytes`, { size }, { 'Content-Range': contentRange(range, size) });
    const status = range ? 206 : 200;
    const len = range ? range.end - range.start : size;
    base['Content-Length'] = len;
    if (range) base['Content-Range'] = contentRange(range, size);
    if (c.method === 'HEAD') return { status, headers: base };
    return this.stream(c, status, base, await this.registry.openBlob(name, digest, range && { start: range.start, end: range.end - 1 }), len);
  }

  private async stream(c: Req, status: number, headers: Headers, body: Readable, len: number): Promise<void> {
    headers[API_VERSION_HEADER] = API_VERSION;
    c.res.writeHead(status, headers);
    await sendBody(body, c.res);
    this.d.countOut(len);
  }

  private async deleteBlob(c: Req, name: string, digestStr: string): Promise<Reply> {
    await this.auth(c.req, repoScope(name, DELETE));
    await this.registry.deleteBlob(name, checkDigest(digestStr));
    return { status: 202 };
  }

  // ---------------------------------------------------------------- uploads

  private uploadHeaders(name: string, st: UploadState): Headers {
    return { Location: `/v2/${name}/blobs/uploads/${st.id}`, Range: uploadRange(st.offset), 'Docker-Upload-UUID': st.id, 'Blob-Upload-Session-ID': st.id };
  }

  private created(name: string, digest: string): Reply {
    return { status: 201, headers: { Location: `/v2/${name}/blobs/${digest}`, 'Docker-Content-Digest': digest } };
  }

  /** The body of an upload request, or undefined when it has none. */
  private body(c: Req, what: 'PATCH' | 'PUT' | 'POST'): { stream: Readable; start?: number; length?: number; onBytes: (n: number) => void } | undefined {
    const req = c.req;
    const cr = req.headers['content-range'];
    const cl = contentLength(req);
    let start: number | undefined;
    let length: number | undefined;
    if (cr !== undefined) {
      const r = parseContentRange(cr);
      if (!r) throw regError('BLOB_UPLOAD_RANGE', `invalid Content-Range ${JSON.stringify(cr.slice(0, 100))}: expected <start>-<end>`);
      start = r.start;
      length = r.end - r.start + 1;
      if (cl !== undefined && cl !== length) throw regError('BLOB_UPLOAD_RANGE', `Content-Range ${cr} is ${length} bytes, Content-Length is ${cl}`);
    }
    if (!hasBody(req) && what !== 'PATCH') return undefined;
    return { stream: req, start, length: length ?? cl, onBytes: this.d.countIn };
  }

  private async startUpload(c: Req, name: string): Promise<Reply> {
    await this.auth(c.req, repoScope(name, PUSH));
    const q = c.query;
    const mount = q.get('mount');
    const from = q.get('from');
    if (mount !== null && isSha256(mount)) {
      let source: string | undefined;
      let ok = true;
      if (from !== null) {
        if (isValidName(from)) {
          source = from;
          await this.auth(c.req, repoScope(from, PULL));
        } else {
          ok = false; // spec: an invalid mount falls back to an upload
        }
      }
      const st = ok ? await this.registry.mount(name, mount, source) : undefined;
      if (st) return this.created(name, st.digest);
    }
    const digest = q.get('digest');
    if (digest !== null) {
      // monolithic upload in one POST
      const d = checkDigest(digest);
      const up = await this.registry.startUpload(name);
      const body = this.body(c, 'POST');
      try {
        const st = await this.registry.completeUpload(name, up.id, d, body);
        return this.created(name, st.digest);
      } catch (err) {
        await this.registry.cancelUpload(name, up.id).catch(() => undefined);
        throw err;
      }
    }
    const st = await this.registry.startUpload(name);
    return { status: 202, headers: this.uploadHeaders(name, st) };
  }

  private async uploadStatus(c: Req, name: string, id: string): Promise<Reply> {
    await this.auth(c.req, repoScope(name, PUSH));
    const st = await this.registry.uploadStatus(name, id);
    return { status: 204, headers: this.uploadHeaders(name, st) };
  }

  /** A 416 carries where the upload is, so the client can resume from there. */
  private async withRangeHeaders<T>(name: string, id: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof RegistryError && isKind(err, 'BLOB_UPLOAD_RANGE')) {
        const st = await this.registry.uploadStatus(name, id).catch(() => undefined);
        if (st) throw new RegistryError(err.kind, err.message, err.detail, this.uploadHeaders(name, st) as Record<string, string>);
      }
      throw err;
    }
  }

  private async patchUpload(c: Req, name: string, id: string): Promise<Reply> {
    await this.auth(c.req, repoScope(name, PUSH));
    const st = await this.withRangeHeaders(name, id, async () => {
      const body = this.body(c, 'PATCH')!;
      return this.registry.appendUpload(name, id, body.stream, body);
    });
    return { status: 202, headers: this.uploadHeaders(name, st) };
  }

  private async putUpload(c: Req, name: string, id: string): Promise<Reply> {
    await this.auth(c.req, repoScope(name, PUSH));
    const digest = c.query.get('digest');
    if (digest === null) throw regError('DIGEST_INVALID', 'the digest query parameter is required to finish an upload');
    const d = checkDigest(digest);
    const st = await this.withRangeHeaders(name, id, () => this.registry.completeUpload(name, id, d, this.body(c, 'PUT')));
    return this.created(name, st.digest);
  }

  private async cancelUpload(c: Req, name: string, id: string): Promise<Reply> {
    await this.auth(c.req, repoScope(name, PUSH));
    await this.registry.cancelUpload(name, id);
    return { status: 204 };
  }

  /** A JSON listing, counted as bytes sent. */
  private listing(value: unknown, headers: Headers): Reply {
    const body = Buffer.from(JSON.stringify(value));
    this.d.countOut(body.length);
    return { status: 200, body, headers: { 'Content-Type': 'application/json; charset=utf-8', ...headers } };
  }

  // ---------------------------------------------------------------- content discovery

  private async tags(c: Req, name: string): Promise<Reply> {
    await this.auth(c.req, repoScope(name, PULL));
    const q = c.query;
    const n = parseN(q.get('n'));
    const page = await this.registry.listTags(name, n, q.get('last') ?? undefined);
    const headers: Headers = {};
    if (page.next !== undefined) headers.Link = `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(page.next)}>; rel="next"`;
    return this.listing({ name, tags: page.items }, headers);
  }

  private async catalog(c: Req): Promise<Reply> {
    await this.auth(c.req, { type: 'registry', name: 'catalog', actions: ['*'] });
    const q = c.query;
    const n = parseN(q.get('n'));
    const page = await this.registry.listRepositories(n, q.get('last') ?? undefined);
    const headers: Headers = {};
    if (page.next !== undefined) headers.Link = `</v2/_catalog?n=${n}&last=${encodeURIComponent(page.next)}>; rel="next"`;
    return this.listing({ repositories: page.items }, headers);
  }

  private async referrers(c: Req, name: string, digestStr: string): Promise<Reply> {
    await this.auth(c.req, repoScope(name, PULL));
    const subject = checkDigest(digestStr);
    const artifactType = c.query.get('artifactType') ?? undefined;
    const manifests = await this.registry.referrers(name, subject, artifactType || undefined);
    const headers: Headers = { 'Content-Type': MediaType.OciIndex };
    if (artifactType) headers['OCI-Filters-Applied'] = 'artifactType';
    return this.listing({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }, headers);
  }
}

// ---------------------------------------------------------------- blob bodies

/** A blob stream that takes back the chunks it produced once they are written (a buffer pool; see storage/filesystem.ts). */
interface RecyclingStream {
  recycle(chunk: Buffer): void;
}

/**
 * Writes a blob body to the response (what `pipeline(body, res)` did, plus buffer reuse): each chunk
 * goes straight to the socket, and once the socket has taken it the chunk is handed back to the
 * stream's buffer pool when the stream has one. Waits for 'drain' when the socket is full; on any
 * error (the blob's read failed, the client went away) both sides are destroyed and it rejects, so
 * the client sees a truncated body, never a wrong one.
 */
async function sendBody(body: Readable, res: ServerResponse): Promise<void> {
  const pool = typeof (body as Partial<RecyclingStream>).recycle === 'function' ? (body as unknown as RecyclingStream) : undefined;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      const more = pool ? res.write(chunk, (err) => { if (!err) pool.recycle(chunk); }) : res.write(chunk);
      if (!more) await drained(res);
    }
    res.end();
    await finished(res);
  } catch (err) {
    body.destroy();
    res.destroy();
    throw err;
  }
}

