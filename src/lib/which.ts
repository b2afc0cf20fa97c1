import { promises as fs, constants } from 'node:fs';
import path from 'node:path';

/** The full path of an executable: `bin` itself when it holds a slash, else the first match on PATH. */
export async function which(bin: string): Promise<string | undefined> {
  if (bin.includes('/')) return bin;
  for (const dir of (process.env.PATH || '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const p = path.join(dir, bin);
    try {
      await fs.access(p, constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}
