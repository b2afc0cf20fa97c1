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
  | 'INTERNAL';

export class SampanError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    override readonly cause?: unknown,
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
export const unavailable = (msg: string) => new SampanError('UNAVAILABLE', msg);
export const internal = (msg: string, cause?: unknown) => new SampanError('INTERNAL', msg, cause);

export function isCode(err: unknown, code: ErrorCode): boolean {
  return err instanceof SampanError && err.code === code;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
