/**
 * Mutual TLS as the engine, the cluster manager and the node agent use it: every side presents a certificate of
 * one CA and accepts only peers whose certificate chains to it (Docker's --tlsverify model).
 */
import { promises as fs } from 'node:fs';
import type { SecureContextOptions, TlsOptions } from 'node:tls';

/** File paths of the CA certificate, this side's certificate and its key. */
export interface TlsPaths {
  ca: string;
  cert: string;
  key: string;
}

/** The three files' contents, for a TLS client or server. */
export type TlsMaterial = Required<Pick<SecureContextOptions, 'ca' | 'cert' | 'key'>>;

export async function readTls(p: TlsPaths): Promise<TlsMaterial> {
  const [ca, cert, key] = await Promise.all([fs.readFile(p.ca), fs.readFile(p.cert), fs.readFile(p.key)]);
  return { ca, cert, key };
}

/** A server's options: a client without a certificate of the CA is refused at the handshake. */
export async function mtlsServerOptions(p: TlsPaths): Promise<TlsOptions> {
  return { ...(await readTls(p)), requestCert: true, rejectUnauthorized: true };
}

/** An error of the TLS layer (a refused or unverifiable certificate), as opposed to a peer that is simply not there. */
export function isTlsError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  return /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED)/.test(String(e?.code ?? '')) || /\b(alert|certificate|SSL routines)\b/i.test(String(e?.message ?? ''));
}
