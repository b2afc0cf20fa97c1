/**
 * Token signing keys: an EC P-256 (ES256) or RSA (RS256) private key, generated at first start and
 * kept under the registry root, or loaded from a configured PEM (optionally with its certificate);
 * and the public keys a registry trusts to verify tokens.
 *
 * Key IDs are libtrust fingerprints, the form Distribution expects in a token's `kid` when it trusts
 * a certificate bundle: SHA-256 of the DER public key (SubjectPublicKeyInfo), the first 240 bits,
 * base32, in 12 groups of 4 joined by ':'.
 */
import { X509Certificate, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';

export type TokenAlg = 'ES256' | 'RS256';

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  alg: TokenAlg;
  kid: string;
  /** The configured certificate, if one was given. */
  certificate?: X509Certificate;
  /** Where the key came from (a file path). */
  source: string;
}

export interface VerificationKey {
  publicKey: KeyObject;
  alg: TokenAlg;
  kid: string;
}

export class KeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyError';
  }
}

/** Where the generated key lives under a registry root. */
export const KEY_FILE = path.join('auth', 'token-key.pem');

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32(buf: Buffer): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of buf) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** The libtrust key ID of a public key (e.g. `PYYO:TEWU:V7JH:26JV:AQTZ:LJC3:SXVJ:XGHA:34F2:2LAQ:ZRMK:Z7Q6`). */
export function libtrustKeyId(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const der = pub.export({ type: 'spki', format: 'der' });
  const b32 = base32(createHash('sha256').update(der).digest().subarray(0, 30));
  return b32.match(/.{4}/g)!.join(':');
}

/** ES256 for EC P-256, RS256 for RSA (2048 bits or more); anything else is refused. */
export function algFor(key: KeyObject, source: string): TokenAlg {
  if (key.asymmetricKeyType === 'ec') {
    if (key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new KeyError(`${source}: EC keys must use the P-256 curve (ES256)`);
    return 'ES256';
  }
  if (key.asymmetricKeyType === 'rsa') {
    if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) throw new KeyError(`${source}: RSA keys must have at least 2048 bits`);
    return 'RS256';
  }
  throw new KeyError(`${source}: unsupported key type ${key.asymmetricKeyType ?? key.type}: use EC P-256 or RSA`);
}

function signingKey(privateKey: KeyObject, source: string, certificate?: X509Certificate): SigningKey {
  const alg = algFor(privateKey, source);
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, alg, kid: libtrustKeyId(publicKey), certificate, source };
}

/** Load a PEM private key (PKCS#8, SEC1 or PKCS#1) and, if given, the certificate that must match it. */
export async function loadSigningKey(keyFile: string, certFile?: string): Promise<SigningKey> {
  let pem: Buffer;
  try {
    pem = await fs.readFile(keyFile);
  } catch (err) {
    throw new KeyError(`token key ${keyFile}: ${(err as Error).message}`);
  }
  const privateKey = parsePrivateKey(pem, keyFile);
  let cert: X509Certificate | undefined;
  if (certFile) {
    try {
      cert = new X509Certificate(await fs.readFile(certFile));
    } catch (err) {
      throw new KeyError(`token certificate ${certFile}: ${(err as Error).message}`);
    }
    if (!cert.checkPrivateKey(privateKey)) throw new KeyError(`token certificate ${certFile} does not match the key ${keyFile}`);
  }
  return signingKey(privateKey, keyFile, cert);
}

function parsePrivateKey(pem: Buffer, source: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (err) {
    throw new KeyError(`token key ${source}: ${(err as Error).message}`);
  }
}

/**
 * The key under `<root>/auth/token-key.pem`: loaded if it exists, else a new EC P-256 key written
 * there (mode 0600, through a temp file linked into place, so two starting processes end up with the
 * same key and a crash never leaves half a key).
 */
export async function loadOrCreateSigningKey(root: string, log?: Logger): Promise<SigningKey> {
  const file = path.join(root, KEY_FILE);
  const dir = path.dirname(file);
  for (let attempt = 0; attempt < 2; attempt++) {
    let pem: Buffer | undefined;
    try {
      pem = await fs.readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new KeyError(`token key ${file}: ${(err as Error).message}`);
    }
    if (pem !== undefined) {
      const st = await fs.stat(file);
      if ((st.mode & 0o077) !== 0) log?.warn({ file, mode: (st.mode & 0o777).toString(8) }, 'token signing key is readable by others; chmod 600 it');
      return signingKey(parsePrivateKey(pem, file), file);
    }
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const tmp = path.join(dir, `.token-key.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    const fh = await fs.open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(privateKey.export({ type: 'pkcs8', format: 'pem' }));
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      // link, unlike rename, fails if another process put its key there first: then that one is used
      await fs.link(tmp, file);
      await syncDir(dir);
      log?.info({ file, kid: libtrustKeyId(privateKey) }, 'generated a token signing key (EC P-256)');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new KeyError(`token key ${file}: ${(err as Error).message}`);
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }
  throw new KeyError(`token key ${file}: could not be created`);
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** The verification half of a signing key. */
export function verificationKey(k: SigningKey): VerificationKey {
  return { publicKey: k.publicKey, alg: k.alg, kid: k.kid };
}

/**
 * Public keys to trust, from PEM files holding certificates or public keys (several per file, as in
 * Distribution's `rootcertbundle`).
 */
export async function loadVerificationKeys(files: readonly string[]): Promise<VerificationKey[]> {
  const out: VerificationKey[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      throw new KeyError(`trusted key file ${file}: ${(err as Error).message}`);
    }
    const blocks = text.match(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g) ?? [];
    if (blocks.length === 0) throw new KeyError(`trusted key file ${file}: no PEM certificate or public key in it`);
    for (const block of blocks) {
      let publicKey: KeyObject;
      try {
        publicKey = block.includes('CERTIFICATE') ? new X509Certificate(block).publicKey : createPublicKey(block);
      } catch (err) {
        throw new KeyError(`trusted key file ${file}: ${(err as Error).message}`);
      }
      out.push({ publicKey, alg: algFor(publicKey, file), kid: libtrustKeyId(publicKey) });
    }
  }
  return out;
}
