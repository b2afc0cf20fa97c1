/** Typed errors with stable codes; each API maps codes to HTTP status in one place. */
export type ErrorCode =
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'INVALID_ARGUMENT'
  | 'NOT_MODIFIED'
  | 'FORBIDDEN'
  | 'UNAUTHORIZED'
  | 'UNAVAILABLE'
  | 'NOT_IMPLEMENTED'
  | 'METHOD_NOT_ALLOWED'
  | 'TOO_LARGE'
  | 'RANGE_NOT_SATISFIABLE'
  | 'TOO_MANY_REQUESTS'
  | 'INTERNAL';

export class SampanError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    override readonly cause?: unknown,
    /** Response headers the error implies (Allow on a 405, Retry-After on a 429/503, Content-Range on a 416). */
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'SampanError';
  }
}

export const notFound = (msg: string) => new SampanError('NOT_FOUND', msg);
export const conflict = (msg: string) => new SampanError('CONFLICT', msg);
export const invalid = (msg: string) => new SampanError('INVALID_ARGUMENT', msg);
export const notModified = (msg = 'not modified') => new SampanError('NOT_MODIFIED', msg);
export const notImplemented = (msg: string) => new SampanError('NOT_IMPLEMENTED', msg);
export const forbidden = (msg: string) => new SampanError('FORBIDDEN', msg);
export const unavailable = (msg: string) => new SampanError('UNAVAILABLE', msg);
export const internal = (msg: string, cause?: unknown) => new SampanError('INTERNAL', msg, cause);
export const tooLarge = (msg: string) => new SampanError('TOO_LARGE', msg);
export const methodNotAllowed = (method: string, path: string, allow: string[]) =>
  new SampanError('METHOD_NOT_ALLOWED', `${method} is not allowed on ${path}`, undefined, { Allow: allow.join(', ') });

export function isCode(err: unknown, code: ErrorCode): boolean {
  return err instanceof SampanError && err.code === code;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
