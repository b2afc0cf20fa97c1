/** Go's time.Duration text (health check flags and messages use it), in nanoseconds. */

const UNITS: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, 'μs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** Parse "1m30s", "1.5s", "500ms"; undefined when it is not a duration. */
export function parseGoDuration(text: string): number | undefined {
  let s = text.trim();
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (!s) return undefined;
  let total = 0;
  const re = /^(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;
  while (s) {
    const m = re.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * UNITS[m[2]!]!;
    s = s.slice(m[0].length);
  }
  return sign * Math.round(total);
}

/** Format like Go's Duration.String: "1s", "1.5s", "500ms", "1m30s", "1h0m0s". */
export function formatGoDuration(ns: number): string {
  if (ns === 0) return '0s';
  const neg = ns < 0;
  let n = Math.abs(Math.round(ns));
  const frac = (v: number, digits: number) => {
    const whole = Math.floor(v / 10 ** digits);
    const rest = (v % 10 ** digits).toString().padStart(digits, '0').replace(/0+$/, '');
    return rest ? `${whole}.${rest}` : `${whole}`;
  };
  let out: string;
  if (n < 1e3) out = `${n}ns`;
  else if (n < 1e6) out = `${frac(n, 3)}µs`;
  else if (n < 1e9) out = `${frac(n, 6)}ms`;
  else {
    const h = Math.floor(n / 3600e9);
    n -= h * 3600e9;
    const m = Math.floor(n / 60e9);
    n -= m * 60e9;
    out = `${frac(n, 9)}s`;
    if (h > 0) out = `${h}h${m}m${out}`;
    else if (m > 0) out = `${m}m${out}`;
  }
  return neg ? `-${out}` : out;
}
