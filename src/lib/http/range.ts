/**
 * The Range request header (RFC 9110 §14), for byte ranges of a blob of known size: the one parser every
 * server here uses. Only a single range is served; what the RFC lets a server ignore (another unit, a
 * syntactically invalid range, several ranges) means "the whole representation".
 */
export type RangeResult = { start: number; end: number } | 'unsatisfiable' | undefined;

/** `[start, end)` to serve, `undefined` for the whole blob (200), or 'unsatisfiable' (416). */
export function parseRange(header: string | undefined, size: number): RangeResult {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined;
  const [, a, b] = m;
  if (a === '' && b === '') return undefined;
  if (a === '') {
    const suffix = Number(b);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size };
  }
  const start = Number(a);
  if (b !== '' && Number(b) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end: b === '' ? size : Math.min(Number(b) + 1, size) };
}

/** The Content-Range of a 206 (`bytes a-b/size`, inclusive) or of a 416 (`bytes * /size`). */
export function contentRange(r: { start: number; end: number } | 'unsatisfiable', size: number): string {
  return r === 'unsatisfiable' ? `bytes */${size}` : `bytes ${r.start}-${r.end - 1}/${size}`;
}
