/**
 * Mirror mode: the `Upstream` of a pull-through cache. The registry consults it when a manifest or
 * blob is not in the local store, and for tags once their TTL has passed:
 *
 * - Manifests by digest are fetched once and kept (immutable).
 * - Tags: a HEAD to the upstream gives the digest it names now; the manifest is fetched only when the
 *   local store does not have it already. The registry serves the tag from its cache for the TTL and
 *   falls back to the local copy when the upstream cannot be reached.
 * - Blobs: a HEAD confirms the upstream repository has it (a blob the store holds for another
 *   repository is then just linked); otherwise the first read starts (or joins) the shared fetch
 *   (fetch.ts), which streams it to clients while storing it.
 * - Tag lists pass through (cached for the TTL); when the upstream fails they come from the store.
 *
 * Talking to the upstream is the engine's Distribution client: the /v2/ ping, Bearer tokens per the
 * Docker token spec (with the configured credentials as Basic at the token service) or Basic auth,
 * redirects (without credentials to other hosts), retry after a 401 with a fresh token.
 */
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { isDigest, sha256, type Digest } from '../../lib/digest.js';
import { errorMessage } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import type { AuthConfig } from '../../lib/distribution/auth.js';
import { MANIFEST_ACCEPT, DistributionError, Registries, errorFrom, readBody, type Endpoint, type RepoClient } from '../../lib/distribution/client.js';
import { regError, RegistryError } from '../errors.js';
import type { Upstream, UpstreamBlob } from '../hooks.js';
import type { Reference } from '../names.js';
import { parseManifest } from '../registry.js';
import type { StorageDriver, StoredManifest } from '../storage/driver.js';
import type { ProxyConfig } from './config.js';
import { BlobFetcher, fetchStream } from './fetch.js';

/** Manifest and tag checks give up on a silent upstream after this long (a stale tag is served then). */
const CHECK_TIMEOUT_MS = 15_000;
const MAX_MANIFEST_BYTES = 4 << 20;
const MAX_CLIENTS = 1024;
const MAX_TAG_LISTS = 1024;
const MAX_TAG_PAGES = 100;

export class MirrorUpstream implements Upstream {
  readonly readOnly = true;
  readonly tagTtlMs: number;
  readonly remote: string;
  private readonly registries: Registries;
  private readonly ep: Endpoint;
  private readonly auth: AuthConfig | undefined;
  private readonly clients = new Map<string, RepoClient>();
  private readonly fetcher: BlobFetcher;
  /** Manifest lookups in flight by `<repo> <ref>`: concurrent requests share one. */
  private readonly pending = new Map<string, Promise<StoredManifest | undefined>>();
  private readonly tagLists = new Map<string, { tags: string[]; until: number }>();

  constructor(
    config: ProxyConfig,
    private readonly storage: StorageDriver,
    private readonly log: Logger,
  ) {
    const base = new URL(config.remoteurl);
    base.pathname = base.pathname.replace(/\/+$/, '');
    this.remote = base.href.replace(/\/+$/, '');
    this.tagTtlMs = config.ttlMs;
    this.registries = new Registries({}, log);
    // a fixed endpoint (no http/https probing): the scheme is the configured one
    this.ep = { domain: base.host, base, tlsInsecure: false, mirror: true };
    this.auth = config.username ? { username: config.username, password: config.password } : undefined;
    this.fetcher = new BlobFetcher(storage, (repo, d) => this.openBlob(repo, d), log);
  }

  close(): void {
    this.registries.close();
  }

  /** Blob fetches in flight (tests, metrics). */
  get activeFetches(): number {
    return this.fetcher.active;
  }

  private client(repository: string): RepoClient {
    let c = this.clients.get(repository);
    if (c) {
      // most recently used last
      this.clients.delete(repository);
      this.clients.set(repository, c);
      return c;
    }
    c = this.registries.repo(this.ep, repository, this.auth, ['pull']);
    if (this.clients.size >= MAX_CLIENTS) this.clients.delete(this.clients.keys().next().value!);
    this.clients.set(repository, c);
    return c;
  }

  // ------------------------------------------------------------------ manifests

  getManifest(repository: string, ref: Reference): Promise<StoredManifest | undefined> {
    const key = `${repository} ${ref.tag ?? ref.digest}`;
    let p = this.pending.get(key);
    if (!p) {
      p = this.fetchManifest(repository, ref).finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    return p;
  }

  private async fetchManifest(repository: string, ref: Reference): Promise<StoredManifest | undefined> {
    const c = this.client(repository);
    const what = `manifest ${repository}:${ref.tag ?? ref.digest}`;
    const accept = { Accept: MANIFEST_ACCEPT.join(', ') };
    try {
      if (ref.tag !== undefined) {
        // what the tag names now; a HEAD (registries such as Docker Hub do not count it as a pull)
        const head = await c.request('HEAD', c.url(`/manifests/${ref.tag}`), { headers: accept, timeoutMs: CHECK_TIMEOUT_MS });
        head.resume();
        if (head.statusCode === 404) return undefined;
        if (head.statusCode !== 200) throw await errorFrom(head, what);
        const d = String(head.headers['docker-content-digest'] ?? '');
        if (isDigest(d)) {
          const local = await this.storage.getManifest(repository, d);
          if (local) return local;
        }
      }
      const res = await c.request('GET', c.url(`/manifests/${ref.tag ?? ref.digest}`), { headers: accept, timeoutMs: CHECK_TIMEOUT_MS });
      if (res.statusCode === 404) {
        res.resume();
        return undefined;
      }
      if (res.statusCode !== 200) throw await errorFrom(res, what);
      const bytes = await readBody(res, MAX_MANIFEST_BYTES);
      return { digest: sha256(bytes), mediaType: this.manifestMediaType(res, bytes, what), bytes };
    } catch (err) {
      throw this.upstreamError(err, what);
    }
  }

  /** Validate what the upstream sent (schema 2 manifests and indexes only) and settle its media type. */
  private manifestMediaType(res: IncomingMessage, bytes: Buffer, what: string): string {
    const ct = String(res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    try {
      // the document's own mediaType wins; the Content-Type only when it names a manifest type
      return parseManifest(bytes, (MANIFEST_ACCEPT as readonly string[]).includes(ct) ? ct : undefined).mediaType;
    } catch (err) {
      throw regError('UNAVAILABLE', `upstream ${this.remote} sent an unusable ${what}: ${errorMessage(err)}`);
    }
  }

  // ------------------------------------------------------------------ blobs

  async getBlob(repository: string, digest: Digest): Promise<UpstreamBlob | undefined> {
    const inflight = this.fetcher.get(digest);
    if (inflight && inflight.repository === repository) return { size: inflight.size, stream: fetchStream(() => this.fetcher.join(repository, digest, inflight.size), this.storage) };
    const size = await this.headBlob(repository, digest);
    if (size === undefined) return undefined;
    const local = await this.storage.statBlob(digest);
    if (local && local.size === size) {
      // the store has it for another repository, and the upstream says this one may read it
      await this.storage.linkBlob(repository, digest);
      return { size, stream: lazy(() => this.storage.openBlob(digest)) };
    }
    return { size, stream: fetchStream(() => this.fetcher.join(repository, digest, size), this.storage) };
  }

  /** The blob's size in the upstream repository; undefined when it does not have it. */
  private async headBlob(repository: string, digest: Digest): Promise<number | undefined> {
    const c = this.client(repository);
    const what = `blob ${repository}@${digest}`;
    try {
      const res = await c.request('HEAD', c.url(`/blobs/${digest}`), { timeoutMs: CHECK_TIMEOUT_MS });
      res.resume();
      if (res.statusCode === 404) return undefined;
      if (res.statusCode !== 200) throw await errorFrom(res, what);
      const size = Number(res.headers['content-length']);
      if (!Number.isSafeInteger(size) || size < 0) throw regError('UNAVAILABLE', `upstream ${this.remote} did not give the size of ${what}`);
      return size;
    } catch (err) {
      throw this.upstreamError(err, what);
    }
  }

  private async openBlob(repository: string, digest: Digest): Promise<Readable> {
    const c = this.client(repository);
    const what = `blob ${repository}@${digest}`;
    let res: IncomingMessage;
    try {
      res = await c.request('GET', c.url(`/blobs/${digest}`));
      if (res.statusCode !== 200) throw await errorFrom(res, what);
    } catch (err) {
      throw this.upstreamError(err, what);
    }
    return res;
  }

  // ------------------------------------------------------------------ tags

  async listTags(repository: string): Promise<string[] | undefined> {
    const hit = this.tagLists.get(repository);
    if (hit && hit.until > Date.now()) return hit.tags;
    const c = this.client(repository);
    const what = `tags of ${repository}`;
    const tags = new Set<string>();
    try {
      let url: URL | undefined = c.url('/tags/list');
      for (let page = 0; url && page < MAX_TAG_PAGES; page++) {
        const res = await c.request('GET', url, { timeoutMs: CHECK_TIMEOUT_MS });
        if (res.statusCode === 404) {
          res.resume();
          return undefined;
        }
        if (res.statusCode !== 200) throw await errorFrom(res, what);
        const body = JSON.parse((await readBody(res, 16 << 20)).toString('utf8')) as { tags?: unknown };
        if (Array.isArray(body.tags)) for (const t of body.tags) if (typeof t === 'string') tags.add(t);
        const next = /<([^>]+)>\s*;\s*rel="?next"?/.exec(String(res.headers.link ?? ''));
        url = next ? new URL(next[1]!, url) : undefined;
      }
    } catch (err) {
      throw this.upstreamError(err, what);
    }
    const sorted = [...tags].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    if (this.tagLists.size >= MAX_TAG_LISTS) this.tagLists.delete(this.tagLists.keys().next().value!);
    this.tagLists.set(repository, { tags: sorted, until: Date.now() + this.tagTtlMs });
    return sorted;
  }

  // ------------------------------------------------------------------ errors

  /** An upstream failure as the registry reports it to its clients. */
  private upstreamError(err: unknown, what: string): RegistryError {
    if (err instanceof RegistryError) return err;
    const status = err instanceof DistributionError ? err.status : 0;
    const msg = errorMessage(err);
    if (status === 401 || status === 403) {
      const hint = this.auth ? 'check the mirror\'s proxy username and password' : 'the mirror needs proxy credentials (--proxy-username/--proxy-password)';
      return regError('DENIED', `upstream ${this.remote} refused access to ${what} (${hint}): ${msg}`);
    }
    if (status === 429) return regError('TOOMANYREQUESTS', `upstream ${this.remote} rate-limits the mirror: ${msg}`);
    return regError('UNAVAILABLE', `upstream ${this.remote} unavailable for ${what}: ${msg}`);
  }
}

/** A stream opened on its first read (a HEAD drops it unread). */
function lazy(open: () => Promise<Readable>): Readable {
  return Readable.from(
    (async function* () {
      for await (const chunk of await open()) yield chunk as Buffer;
    })(),
    { objectMode: false },
  );
}
