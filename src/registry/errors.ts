/**
 * Registry errors: the OCI Distribution Spec's error codes, and the one table that maps each kind of
 * failure to its code and HTTP status. Services throw RegistryError; the API renders it as
 * `{"errors":[{"code","message","detail"}]}` with the status from this table and nothing else.
 */
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
  | 'UNKNOWN';

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
  INTERNAL: { code: 'UNKNOWN', status: 500, message: 'unknown error' },
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

/** The JSON body of an error response. */
export function errorBody(err: RegistryError): string {
  const e: { code: string; message: string; detail?: unknown } = { code: err.code, message: err.message };
  e.detail = err.detail ?? null;
  return JSON.stringify({ errors: [e] });
}
