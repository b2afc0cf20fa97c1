/**
 * An htpasswd file of bcrypt entries (`user:$2y$...`, as `htpasswd -B` writes them): loaded once,
 * re-read when it changes on disk (size, mtime or inode differ), verified with bcrypt.
 *
 * Only bcrypt is accepted ($2y$, $2a$, $2b$): MD5 ($apr1$), SHA1 ({SHA}), crypt and plain text are
 * refused at load with an error naming the line. An unknown user is checked against a dummy hash of
 * the same cost, so the answer takes as long as for a known one. Successful verifications are
 * remembered for a short while (as an HMAC under a per-process random key, never the password),
 * so Basic auth on every request does not pay bcrypt each time; failures are never remembered.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { promises as fs, type Stats } from 'node:fs';
import bcrypt from 'bcryptjs';
import type { Logger } from 'pino';

const BCRYPT_RE = /^\$2[aby]\$(\d{2})\$[./A-Za-z0-9]{53}$/;
const USER_RE = /^[^\s:]+$/;

export class HtpasswdError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HtpasswdError';
  }
}

/** Parse htpasswd text: `user:hash` lines; blank lines and `#` comments are skipped. */
export function parseHtpasswd(text: string, source = 'htpasswd'): Map<string, string> {
  const users = new Map<string, string>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const where = `${source} line ${i + 1}`;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new HtpasswdError(`${where}: expected USER:HASH`);
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (!USER_RE.test(user)) throw new HtpasswdError(`${where}: invalid user name`);
    if (!BCRYPT_RE.test(hash)) {
      const kind = hash.startsWith('$apr1$') ? 'MD5 ($apr1$)' : hash.startsWith('{SHA}') ? 'SHA1 ({SHA})' : hash.startsWith('$') ? `"${hash.split('$')[1] ?? ''}" hashes` : 'crypt or plain text';
      throw new HtpasswdError(`${where}: user ${JSON.stringify(user)}: ${kind} is not supported; only bcrypt ($2y$, $2a$, $2b$) is (create entries with \`htpasswd -B\`)`);
    }
    if (users.has(user)) throw new HtpasswdError(`${where}: user ${JSON.stringify(user)} appears twice`);
    users.set(user, hash);
  }
  return users;
}

export interface HtpasswdOptions {
  /** How often (ms) the file is stat'ed for changes at most; 0 = on every verification. Default 1000. */
  checkIntervalMs?: number;
  /** How long (ms) a successful verification is remembered; 0 = never. Default 5 minutes. */
  cacheTtlMs?: number;
  /** Reload failures are logged here (the old entries stay in force). */
  log?: Logger;
}

interface FileStamp {
  size: number;
  mtimeMs: number;
  ino: number;
}

const sameStamp = (a: FileStamp, b: FileStamp) => a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;
const MAX_CACHE = 10_000;

export class Htpasswd {
  private users: Map<string, string>;
  private stamp: FileStamp;
  private lastCheck = Date.now();
  private reloading: Promise<void> | undefined;
  private readonly checkIntervalMs: number;
  private readonly cacheTtlMs: number;
  private readonly log: Logger | undefined;
  private readonly cacheKey = randomBytes(32);
  /** HMAC(user, password, hash) → expiry time. */
  private readonly verified = new Map<string, number>();
  private dummyHash: Promise<string> | undefined;

  private constructor(
    readonly file: string,
    users: Map<string, string>,
    stamp: FileStamp,
    opts: HtpasswdOptions,
  ) {
    this.users = users;
    this.stamp = stamp;
    this.checkIntervalMs = opts.checkIntervalMs ?? 1000;
    this.cacheTtlMs = opts.cacheTtlMs ?? 5 * 60_000;
    this.log = opts.log;
  }

  /** Load the file; throws HtpasswdError (unreadable file, or an entry that is not bcrypt). */
  static async load(file: string, opts: HtpasswdOptions = {}): Promise<Htpasswd> {
    const { users, stamp } = await readFile(file);
    return new Htpasswd(file, users, stamp, opts);
  }

  /** The user names, in file order. */
  list(): string[] {
    return [...this.users.keys()];
  }

  has(user: string): boolean {
    return this.users.has(user);
  }

  /** Re-read the file if it changed since it was read (at most every checkIntervalMs). */
  async refresh(force = false): Promise<void> {
    const now = Date.now();
    if (!force && now - this.lastCheck < this.checkIntervalMs) return;
    this.lastCheck = now;
    if (this.reloading) return this.reloading;
    this.reloading = this.reloadIfChanged().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  private async reloadIfChanged(): Promise<void> {
    try {
      const st = await fs.stat(this.file);
      if (sameStamp(this.stamp, { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino })) return;
      const { users, stamp } = await readFile(this.file);
      this.users = users;
      this.stamp = stamp;
      this.dummyHash = undefined;
      this.verified.clear();
      this.log?.info({ file: this.file, users: users.size }, 'htpasswd file reloaded');
    } catch (err) {
      this.log?.error({ file: this.file, err: (err as Error).message }, 'htpasswd file reload failed; keeping the previous entries');
    }
  }

  private dummy(): Promise<string> {
    return (this.dummyHash ??= dummyFor(this.users));
  }

  /** Whether `password` is `user`'s. Takes bcrypt time for known and unknown users alike. */
  async verify(user: string, password: string): Promise<boolean> {
    await this.refresh();
    const hash = this.users.get(user);
    const key = this.cacheTtlMs > 0 && hash ? createHmac('sha256', this.cacheKey).update(user).update('\0').update(password).update('\0').update(hash).digest('base64') : undefined;
    if (key !== undefined) {
      const until = this.verified.get(key);
      if (until !== undefined) {
        if (until > Date.now()) return true;
        this.verified.delete(key);
      }
    }
    // bcrypt only looks at the first 72 bytes; an empty password never matches
    const ok = await bcrypt.compare(password, hash ?? (await this.dummy()));
    const good = ok && hash !== undefined && password.length > 0;
    if (good && key !== undefined) {
      if (this.verified.size >= MAX_CACHE) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(key, Date.now() + this.cacheTtlMs);
    }
    return good;
  }
}

async function readFile(file: string): Promise<{ users: Map<string, string>; stamp: FileStamp }> {
  let text: string;
  let st: Stats;
  try {
    const fh = await fs.open(file, 'r');
    try {
      st = await fh.stat();
      text = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw new HtpasswdError(`htpasswd file ${file}: ${(err as Error).message}`);
  }
  return { users: parseHtpasswd(text, file), stamp: { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino } };
}

/** A hash nobody's password matches, of the cost the first entry uses (so unknown users take as long). */
function dummyFor(users: Map<string, string>): Promise<string> {
  let cost = 10;
  for (const h of users.values()) {
    cost = Number(h.slice(4, 6));
    break;
  }
  return bcrypt.hash(randomBytes(18).toString('base64'), Math.min(Math.max(cost, 4), 16));
}
