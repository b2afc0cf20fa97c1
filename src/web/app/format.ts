/** Numbers as people read them. */
export function bytes(n: number): string {
  const u = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n >= 100 || i === 0 ? n.toFixed(0) : n.toFixed(1)} ${u[i]}`;
}

export const pct = (a: number, b: number): number => (b > 0 ? Math.min(100, Math.round((a / b) * 100)) : 0);

export function ago(iso: string | number): string {
  const t = typeof iso === 'number' ? iso * 1000 : Date.parse(iso);
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

/**
 * Names in human order (host2 before host10), compared as plain strings: each name's digit runs padded to a fixed
 * width, computed once per name. Sorting 30,000 hosts this way takes milliseconds; with a collator (or
 * `localeCompare` with options, which builds a collator per call) it took up to seconds.
 */
const keys = new Map<string, string>();
export function nameKey(name: string): string {
  let k = keys.get(name);
  if (k === undefined) {
    k = name.toLowerCase().replace(/\d+/g, (d) => d.padStart(12, '0'));
    if (keys.size > 200_000) keys.clear();
    keys.set(name, k);
  }
  return k;
}
export const byName = (a: string, b: string): number => {
  const x = nameKey(a);
  const y = nameKey(b);
  return x < y ? -1 : x > y ? 1 : 0;
};
