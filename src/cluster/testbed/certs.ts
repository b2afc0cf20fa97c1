/**
 * A CA and certificates signed by it, made with `openssl` (node's crypto signs no X.509 certificates), for the
 * testbed's mutual TLS. Each certificate is good as server and as client (the manager is both, so is an engine),
 * and lives in a directory of its own as Docker's DOCKER_CERT_PATH lays it out: ca.pem, cert.pem, key.pem.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { TlsPaths } from '../../lib/tls.js';
import { run } from '../proc.js';

export interface CertAuthority {
  cert: string;
  key: string;
}

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A self-signed CA in dir (ca.pem, ca-key.pem). */
export async function makeCa(dir: string, name: string): Promise<CertAuthority> {
  await fs.mkdir(dir, { recursive: true });
  const ca = { cert: path.join(dir, 'ca.pem'), key: path.join(dir, 'ca-key.pem') };
  await run('openssl', ['req', '-x509', ...KEY, '-keyout', ca.key, '-out', ca.cert, '-days', '3650', '-subj', `/CN=${name}`]);
  await fs.chmod(ca.key, 0o600);
  return ca;
}

/**
 * A certificate of `ca` for `name` (its CN; `ou`: its OUs) in dir, valid for the IP addresses and DNS names in
 * `sans`, for `days` (825; -1 makes one that expired yesterday).
 */
export async function makeCert(ca: CertAuthority, dir: string, name: string, sans: string[], o: { ou?: string[]; days?: number } = {}): Promise<TlsPaths> {
  await fs.mkdir(dir, { recursive: true });
  const out = { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') };
  const csr = path.join(dir, 'cert.csr');
  const ext = path.join(dir, 'cert.ext');
  const alt = sans.map((s) => (/^[\d.]+$|:/.test(s) ? `IP:${s}` : `DNS:${s}`)).join(',');
  await fs.writeFile(ext, `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n${alt ? `subjectAltName=${alt}\n` : ''}`);
  try {
    await run('openssl', ['req', '-new', ...KEY, '-keyout', out.key, '-out', csr, '-subj', `/CN=${name}${(o.ou ?? []).map((u) => `/OU=${u}`).join('')}`]);
    await run('openssl', ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-days', String(o.days ?? 825), '-extfile', ext, '-out', out.cert]);
  } finally {
    await Promise.all([fs.rm(csr, { force: true }), fs.rm(ext, { force: true })]);
  }
  await fs.copyFile(ca.cert, out.ca);
  await fs.chmod(out.key, 0o600);
  return out;
}
