/**
 * Output helpers for the client commands, matching what the docker CLI prints: borderless tables,
 * decimal human sizes, "2 days ago" durations, indented JSON.
 */
import Table from 'cli-table3';
import { humanDuration } from '../lib/units.js';

/** Space between table columns: docker's tabwriter pads with three. */
const COLUMN_GAP = '   ';

/** A docker-like table: no borders, no colours, columns separated by three spaces, no trailing blanks. */
export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const t = new Table({
    head: headers,
    chars: {
      top: '', 'top-mid': '', 'top-left': '', 'top-right': '',
      bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
      left: '', 'left-mid': '', mid: '', 'mid-mid': '',
      right: '', 'right-mid': '', middle: COLUMN_GAP,
    },
    style: { 'padding-left': 0, 'padding-right': 0, head: [], border: [], compact: true },
  });
  for (const r of rows) t.push(r.map((c) => String(c)));
  return t
    .toString()
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l.length > 0)
    .join('\n');
}

/**
 * Go's `%.<p>g`: `p` significant digits, trailing zeros dropped, exponent form (`1e+03`) when the
 * exponent is below -4 or at least `p`.
 */
export function formatG(x: number, precision: number): string {
  if (x === 0) return '0';
  if (!Number.isFinite(x)) return x > 0 ? '+Inf' : x < 0 ? '-Inf' : 'NaN';
  const p = Math.max(1, precision);
  const [mant, expStr] = x.toExponential(p - 1).split('e');
  const exp = Number(expStr);
  const trim = (s: string) => (s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s);
  if (exp < -4 || exp >= p) {
    const e = Math.abs(exp);
    return `${trim(mant!)}e${exp < 0 ? '-' : '+'}${e < 10 ? '0' : ''}${e}`;
  }
  return trim(x.toFixed(Math.max(0, p - 1 - exp)));
}

const DECIMAL_UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];

/**
 * Docker's human size: 1000-based units ("512B", "4.26MB", "1.2GB"). `precision` is the number of
 * significant digits; the docker CLI shows image and container sizes with 3.
 */
export function humanSize(bytes: number, precision = 3): string {
  let size = Number(bytes);
  if (!Number.isFinite(size)) size = 0;
  let i = 0;
  while (Math.abs(size) >= 1000 && i < DECIMAL_UNITS.length - 1) {
    size /= 1000;
    i++;
  }
  return `${formatG(size, precision)}${DECIMAL_UNITS[i]}`;
}

/** "2 days ago" for a unix time in seconds (what `docker ps` / `docker images` show as CREATED). */
export function ago(unixSeconds: number, now = Date.now()): string {
  return `${humanDuration(now - unixSeconds * 1000)} ago`;
}

/** Go's default time.Time format, in UTC: "2024-05-01 10:00:00 +0000 UTC" (docker's CreatedAt). */
export function goTime(unixSeconds: number): string {
  const d = new Date(unixSeconds * 1000);
  const p = (n: number) => String(n).padStart(2, '0');
  return (
    `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000 UTC`
  );
}

/** Docker's Ellipsis: cut to `max` characters, the last one an ellipsis. */
export function ellipsis(s: string, max: number): string {
  const chars = Array.from(s);
  if (chars.length <= max) return s;
  if (max <= 1) return chars.slice(0, max).join('');
  return `${chars.slice(0, max - 1).join('')}…`;
}

/** The short form of an ID: without "sha256:", the first 12 hex digits. */
export function shortId(id: string): string {
  const i = id.indexOf(':');
  return (i >= 0 ? id.slice(i + 1) : id).slice(0, 12);
}

/** JSON as docker prints it for inspect: indented by four spaces, newline-terminated. */
export function printJson(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v, null, 4)}\n`);
}

/** One compact JSON document per line (docker's `--format json` for lists). */
export function printJsonLines(items: unknown[]): void {
  let out = '';
  for (const item of items) out += `${JSON.stringify(item)}\n`;
  process.stdout.write(out);
}
