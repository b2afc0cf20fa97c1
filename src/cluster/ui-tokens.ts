/**
 * Browser tokens (`sampan cluster token --ui`): bearer tokens for the manager's --ui-listen, each with a role.
 * etcd keeps `tokens/ui/ID` = {id, role, hash, createdAt}: the token's SHA-256, never the token, so a token prints
 * once. The token names its own id (`SMPUI-ID.SECRET`), so checking one is a single read of one key, and revoking
 * one is deleting that key.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { ClusterStore, hashToken } from './store.js';

export type UiRole = 'read' | 'admin';

export interface UiTokenRecord {
  id: string;
  role: UiRole;
  hash: string;
  createdAt: string;
}

const TOKEN = /^SMPUI-([0-9a-f]{12})\.[0-9a-f]{48}$/;
const key = (id: string) => `tokens/ui/${id}`;

/** The id a token names (`SMPUI-ID.SECRET`), which `--ls` and `--revoke` know it by; undefined for no token. */
export const uiTokenId = (token: string): string | undefined => TOKEN.exec(token)?.[1];

/** Makes a token of `role`, stores its hash and answers the token (the only time it is seen). */
export async function issueUiToken(store: ClusterStore, role: UiRole): Promise<{ id: string; token: string }> {
  const id = randomBytes(6).toString('hex');
  const token = `SMPUI-${id}.${randomBytes(24).toString('hex')}`;
  const rec: UiTokenRecord = { id, role, hash: hashToken(token), createdAt: new Date().toISOString() };
  await store.write([{ put: key(id), value: rec }]);
  return { id, token };
}

/** Deletes a token's record: false when there was none. */
export async function revokeUiToken(store: ClusterStore, id: string): Promise<boolean> {
  if (!(await store.readOne<UiTokenRecord>(key(id)))) return false;
  await store.write([{ del: key(id) }]);
  return true;
}

/** The tokens' records (ids, roles, dates; hashes left out). */
export async function listUiTokens(store: ClusterStore): Promise<Array<Omit<UiTokenRecord, 'hash'>>> {
  return [...(await store.readAll<UiTokenRecord>('tokens/ui/')).values()].map(({ hash: _, ...r }) => r);
}

/** Positive answers are kept this long: a revoked token stops working within it, and a page's requests cost no read each. */
const CACHE_MS = 5000;

/** Checks tokens against etcd, remembering recent answers (a browser sends its token with every request). */
export class UiTokenChecker {
  private readonly cache = new Map<string, { role: UiRole; until: number }>();

  constructor(private readonly store: ClusterStore) {}

  async role(token: string): Promise<UiRole | undefined> {
    const m = TOKEN.exec(token);
    if (!m) return undefined;
    const hash = hashToken(token);
    const hit = this.cache.get(hash);
    if (hit && hit.until > Date.now()) return hit.role;
    this.cache.delete(hash);
    const rec = await this.store.readOne<UiTokenRecord>(key(m[1]!));
    if (!rec) return undefined;
    const want = Buffer.from(rec.hash, 'hex');
    const got = Buffer.from(hash, 'hex');
    if (want.length !== got.length || !timingSafeEqual(want, got)) return undefined;
    if (this.cache.size > 10_000) this.cache.clear(); // bounded: tokens are few, junk is not cached at all
    this.cache.set(hash, { role: rec.role, until: Date.now() + CACHE_MS });
    return rec.role;
  }
}

/** `sampan cluster token --ui`: issue, revoke or list browser tokens in the cluster's etcd. */
export async function uiTokens<T>(etcd: string[], name: string, fn: (store: ClusterStore) => Promise<T>): Promise<T> {
  const store = ClusterStore.connect(etcd, name);
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}
