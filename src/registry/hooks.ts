/**
 * Extension points of the registry server, with the defaults used when nothing is plugged in:
 * - Authorizer: asked on every request which repository it touches and with which actions (auth:
 *   htpasswd, token service). The default allows everything.
 * - Upstream: consulted in the manifest and blob read paths when the local store does not have
 *   what was asked (mirror mode: a pull-through cache). The default is none.
 */
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { Digest } from '../lib/digest.js';
import type { Reference } from './names.js';
import type { ByteRange, StoredManifest } from './storage/driver.js';

/** Actions as the Docker token spec names them. */
export type Action = 'pull' | 'push' | 'delete' | '*';

/** What a request needs: `repository:<name>:<actions>`, or `registry:catalog:*` for /v2/_catalog. */
export interface Scope {
  type: 'repository' | 'registry';
  name: string;
  actions: Action[];
}

export interface Authorizer {
  /**
   * Allow the request (return or resolve), or refuse it by throwing a RegistryError: UNAUTHORIZED
   * (with a WWW-Authenticate header in `headers`) when credentials are missing or wrong, DENIED when
   * they do not grant the scope. `scope` is undefined for `GET /v2/` (the base check every client
   * makes first). A cross-repository mount asks twice: push on the target, pull on the source.
   * Return synchronously when possible: the server skips an await on the hot path then.
   */
  authorize(req: IncomingMessage, scope: Scope | undefined): void | Promise<void>;
}

export const allowAll: Authorizer = {
  authorize: () => undefined,
};

export interface UpstreamBlob {
  /** Size of the whole blob. */
  size: number;
  /** The bytes asked for (the whole blob, or the range). */
  stream: Readable;
}

export interface Upstream {
  /** Pushes, deletes and upload sessions are refused with UNSUPPORTED (a mirror is read-only). */
  readonly readOnly: boolean;
  /**
   * A manifest the local store does not have. The registry stores what this returns in the
   * repository (and tags it when asked by tag) and caches it; undefined means unknown upstream too.
   */
  getManifest(repository: string, ref: Reference): Promise<StoredManifest | undefined>;
  /**
   * A blob the repository does not have locally. Storing it (e.g. while streaming it to the client)
   * is up to the upstream; undefined means unknown upstream too.
   */
  getBlob(repository: string, digest: Digest, range?: ByteRange): Promise<UpstreamBlob | undefined>;
  /** How long a tag resolved through the upstream is served from the cache before it is re-checked. */
  readonly tagTtlMs?: number;
  /**
   * Optional: the repository's tags as the upstream lists them (sorted); undefined when it does not
   * know the repository. Without it (or when it fails) tag lists come from the local store.
   */
  listTags?(repository: string): Promise<string[] | undefined>;
  /** Optional: release connections when the registry stops. */
  close?(): void;
}
