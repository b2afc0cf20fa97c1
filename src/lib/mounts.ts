import { promises as fs } from 'node:fs';
import path from 'node:path';

/** The mount at exactly `target` (from /proc/self/mountinfo): its source and file-system type, if any. */
export async function mountAt(target: string): Promise<{ source: string; fstype: string } | undefined> {
  const t = path.resolve(target);
  const text = await fs.readFile('/proc/self/mountinfo', 'utf8');
  let found: { source: string; fstype: string } | undefined;
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (unescape(f[4] ?? '') !== t) continue;
    const sep = f.indexOf('-');
    found = { fstype: f[sep + 1] ?? '', source: unescape(f[sep + 2] ?? '') }; // the last one stacked on top wins
  }
  return found;
}

export async function isMounted(target: string): Promise<boolean> {
  return (await mountAt(target)) !== undefined;
}

// mountinfo escapes space, tab, newline and backslash as octal
const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
