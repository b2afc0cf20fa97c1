/**
 * Go's encoding/json matches object keys to struct fields ignoring case, and a later key
 * overwrites an earlier one: Docker's API accepts `detachKeys` for `DetachKeys`. This renames the keys of a decoded
 * body that name one of `fields` so, keeping the others as they are.
 */
export function goFields<T extends object>(body: unknown, fields: readonly (keyof T & string)[]): Partial<T> {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return {};
  const byLower = new Map(fields.map((f) => [f.toLowerCase(), f]));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) out[byLower.get(k.toLowerCase()) ?? k] = v;
  return out as Partial<T>;
}
