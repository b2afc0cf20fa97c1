/**
 * Registry errors: the OCI Distribution Spec's error codes, and the one table that maps each kind of
 * failure to its code and HTTP status. Services throw RegistryError; the API's flavour (ociFlavour) renders
 * it as `{"errors":[{"code","message","detail"}]}` with the status from this table and nothing else.
 */
import { SampanError, type ErrorCode } from '../lib/errors.js';
import type { ErrorFlavour } from '../lib/http/status.js';

export type OciErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  // not in the spec's table; Distribution's codes, which clients already know
  | 'PAGINATION_NUMBER_INVALID'
  | 'UNAVAILABLE'
  | 'UNKNOWN'
  // the token service's (Docker registry token spec)
  | 'INVALID_REQUEST';

interface Kind {
  code: OciErrorCode;
  status: number;
  message: string;
}

/** Every kind of failure the registry reports: code, status and default message. THE place for statuses. */
export const ERROR_KINDS = {
  BLOB_UNKNOWN: { code: 'BLOB_UNKNOWN', status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { code: 'BLOB_UPLOAD_INVALID', status: 400, message: 'blob upload invalid' },
  /** A chunk that does not start at the upload's offset, or a malformed Content-Range (spec: 416). */
  BLOB_UPLOAD_RANGE: { code: 'BLOB_UPLOAD_INVALID', status: 416, message: 'chunk out of order or Content-Range invalid' },
  BLOB_UPLOAD_UNKNOWN: { code: 'BLOB_UPLOAD_UNKNOWN', status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { code: 'DIGEST_INVALID', status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { code: 'MANIFEST_BLOB_UNKNOWN', status: 400, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { code: 'MANIFEST_INVALID', status: 400, message: 'manifest invalid' },
  /** A manifest over the configured size limit. */
  MANIFEST_TOO_LARGE: { code: 'MANIFEST_INVALID', status: 413, message: 'manifest too large' },
  MANIFEST_UNKNOWN: { code: 'MANIFEST_UNKNOWN', status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { code: 'NAME_INVALID', status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { code: 'NAME_UNKNOWN', status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { code: 'SIZE_INVALID', status: 400, message: 'provided length did not match content length' },
  /** A blob Range request outside the blob. */
  RANGE_NOT_SATISFIABLE: { code: 'SIZE_INVALID', status: 416, message: 'requested range not satisfiable' },
  UNAUTHORIZED: { code: 'UNAUTHORIZED', status: 401, message: 'authentication required' },
  DENIED: { code: 'DENIED', status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { code: 'UNSUPPORTED', status: 405, message: 'the operation is unsupported' },
  /** No such endpoint. */
  ROUTE_UNKNOWN: { code: 'UNSUPPORTED', status: 404, message: 'no such endpoint' },
  TOOMANYREQUESTS: { code: 'TOOMANYREQUESTS', status: 429, message: 'too many requests' },
  PAGINATION_NUMBER_INVALID: { code: 'PAGINATION_NUMBER_INVALID', status: 400, message: 'invalid number of results requested' },
  UNAVAILABLE: { code: 'UNAVAILABLE', status: 503, message: 'service unavailable' },
  /** An upstream (a mirror's, a P2P peer's) that failed or could not be reached. */
  UPSTREAM: { code: 'UNAVAILABLE', status: 502, message: 'the upstream registry failed' },
  INTERNAL: { code: 'UNKNOWN', status: 500, message: 'unknown error' },
  /** A token request the token service cannot answer (unknown service, bad scope, account mismatch). */
  TOKEN_REQUEST_INVALID: { code: 'INVALID_REQUEST', status: 400, message: 'invalid token request' },
  /** An OAuth2 token request with a grant type other than password: answered in OAuth2's shape. */
  UNSUPPORTED_GRANT_TYPE: { code: 'INVALID_REQUEST', status: 400, message: 'only grant_type=password is supported' },
} as const satisfies Record<string, Kind>;

export type ErrorKind = keyof typeof ERROR_KINDS;

export class RegistryError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message?: string,
    readonly detail?: unknown,
    /** Extra response headers (Range and Location on a 416, WWW-Authenticate on a 401). */
    readonly headers?: Record<string, string>,
  ) {
    super(message ?? ERROR_KINDS[kind].message);
    this.name = 'RegistryError';
  }

  get code(): OciErrorCode {
    return ERROR_KINDS[this.kind].code;
  }

  get status(): number {
    return ERROR_KINDS[this.kind].status;
  }
}

export const regError = (kind: ErrorKind, message?: string, detail?: unknown, headers?: Record<string, string>) =>
  new RegistryError(kind, message, detail, headers);

export function isKind(err: unknown, kind: ErrorKind): boolean {
  return err instanceof RegistryError && err.kind === kind;
}

/** What an upstream's refusal of a blob means for a client of the mirror; any other failure is UPSTREAM. */
const BLOB_UPSTREAM_KINDS: readonly ErrorKind[] = ['BLOB_UNKNOWN', 'UNAUTHORIZED', 'DENIED', 'TOOMANYREQUESTS'];

/** An upstream's error answer to a blob request (its challenge kept, for the client to authenticate). */
export function blobUpstreamError(status: number, message: string, headers: globalThis.Headers): RegistryError {
  const challenge = headers.get('www-authenticate');
  return new RegistryError(BLOB_UPSTREAM_KINDS.find((k) => ERROR_KINDS[k].status === status) ?? 'UPSTREAM', message, undefined, challenge ? { 'WWW-Authenticate': challenge } : undefined);
}

/** An upstream's refusal that asking again will not change (a 4xx): not worth a retry. */
export const isRefusal = (err: unknown) => err instanceof RegistryError && err.status < 500;

/** The kit's errors (no route, a method the route lacks) as the registry's kinds. */
const KIND_OF_CODE: Partial<Record<ErrorCode, ErrorKind>> = {
  NOT_FOUND: 'ROUTE_UNKNOWN',
  METHOD_NOT_ALLOWED: 'UNSUPPORTED',
  UNAUTHORIZED: 'UNAUTHORIZED',
  FORBIDDEN: 'DENIED',
  TOO_MANY_REQUESTS: 'TOOMANYREQUESTS',
  UNAVAILABLE: 'UNAVAILABLE',
};

/** Any error as a RegistryError: untyped ones are internal errors, whose words stay in the log. */
export function asRegistryError(err: unknown): RegistryError {
  if (err instanceof RegistryError) return err;
  const kind = err instanceof SampanError ? KIND_OF_CODE[err.code] : undefined;
  return kind ? new RegistryError(kind, (err as SampanError).message, undefined, (err as SampanError).headers) : new RegistryError('INTERNAL', 'internal error');
}

/** The JSON body of an error response. */
export function errorBody(err: RegistryError): string {
  const e: { code: string; message: string; detail?: unknown } = { code: err.code, message: err.message };
  e.detail = err.detail ?? null;
  return JSON.stringify({ errors: [e] });
}

/** The Distribution API's errors: `{"errors":[{"code","message","detail"}]}`, the status from ERROR_KINDS. */
export const ociFlavour: ErrorFlavour = {
  render(err) {
    const e = asRegistryError(err);
    return { status: e.status, body: errorBody(e), headers: { 'Content-Type': 'application/json; charset=utf-8', ...e.headers } };
  },
};
