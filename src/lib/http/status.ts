/**
 * The one table from the error vocabulary (lib/errors.ts) to HTTP status, and the error body of each API
 * flavour: Docker's `{"message"}` and the `{"error":{"code","message"}}` shape of Sampan's own JSON APIs (P2P,
 * cluster). The registry's OCI flavour (`{"errors":[…]}`) lives with the registry, whose error kinds carry OCI
 * codes; it maps the same vocabulary through this table.
 */
import { SampanError, errorMessage, type ErrorCode } from '../errors.js';

export const STATUS: Record<ErrorCode, number> = {
  NOT_MODIFIED: 304,
  INVALID_ARGUMENT: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  TOO_LARGE: 413,
  RANGE_NOT_SATISFIABLE: 416,
  TOO_MANY_REQUESTS: 429,
  INTERNAL: 500,
  NOT_IMPLEMENTED: 501,
  UNAVAILABLE: 503,
};

/** The code of an error answer's status: the table read backwards (an unknown 5xx is INTERNAL, 4xx INVALID_ARGUMENT). */
export function codeOfStatus(status: number): ErrorCode {
  for (const [code, s] of Object.entries(STATUS) as Array<[ErrorCode, number]>) if (s === status) return code;
  return status >= 500 ? 'INTERNAL' : 'INVALID_ARGUMENT';
}

export function statusOf(err: unknown): number {
  return err instanceof SampanError ? STATUS[err.code] : 500;
}

/** How an API renders an error: its status, body and headers. */
export interface ErrorFlavour {
  render(err: unknown): { status: number; body: unknown; headers: Record<string, string> };
}

/** What a client may read of an error: a typed error's message; anything else is an internal error. */
const publicMessage = (err: unknown) => (err instanceof SampanError ? err.message : `internal error: ${errorMessage(err)}`);
const headersOf = (err: unknown) => (err instanceof SampanError ? { ...err.headers } : {});

/** Docker's Engine API: `{"message": "..."}`. */
export const dockerFlavour: ErrorFlavour = {
  render: (err) => ({ status: statusOf(err), body: { message: err instanceof SampanError ? err.message : errorMessage(err) }, headers: headersOf(err) }),
};

/** Sampan's own JSON APIs: `{"error": {"code": "NOT_FOUND", "message": "..."}}`. */
export const jsonFlavour: ErrorFlavour = {
  render: (err) => ({
    status: statusOf(err),
    body: { error: { code: err instanceof SampanError ? err.code : 'INTERNAL', message: publicMessage(err) } },
    headers: headersOf(err),
  }),
};
