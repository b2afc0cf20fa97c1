import { invalid } from '../../lib/errors.js';

/** Docker's default: ctrl-p, ctrl-q. */
export const DEFAULT_DETACH_KEYS = 'ctrl-p,ctrl-q';

/**
 * Docker's detach key syntax: comma-separated keys, each a single character or "ctrl-X" with X one of a-z, @, [, \,
 * ], ^ or _. An empty string turns detaching off.
 */
export function parseDetachKeys(spec: string): Buffer {
  if (spec === '') return Buffer.alloc(0);
  const out: number[] = [];
  for (const key of spec.split(',')) {
    const k = key.toLowerCase();
    if (key.length === 1) out.push(key.charCodeAt(0));
    else if (k.startsWith('ctrl-') && k.length === 6 && /[a-z@[\\\]^_]/.test(k[5]!)) {
      const c = k[5]!;
      out.push(c >= 'a' && c <= 'z' ? c.charCodeAt(0) - 96 : c.charCodeAt(0) - 64);
    } else throw invalid(`Invalid detach keys (${spec}) provided`);
  }
  return Buffer.from(out);
}

/**
 * Watches a client's input for the detach sequence. Bytes that might start the sequence are held back until the
 * next bytes tell; a completed sequence is swallowed and reported, everything else passes on unchanged.
 */
export class EscapeProxy {
  private matched = 0;
  detached = false;

  constructor(private readonly keys: Buffer) {}

  /** The bytes to forward from this chunk; `detached` turns true when the sequence completes (the rest is dropped). */
  filter(chunk: Buffer): Buffer {
    if (!this.keys.length || this.detached) return this.detached ? Buffer.alloc(0) : chunk;
    const out: number[] = [];
    for (const b of chunk) {
      if (b === this.keys[this.matched]) {
        this.matched++;
        if (this.matched === this.keys.length) {
          this.detached = true;
          break;
        }
        continue;
      }
      // a partial match that fails: its bytes were input after all
      for (let i = 0; i < this.matched; i++) out.push(this.keys[i]!);
      this.matched = 0;
      if (b === this.keys[0]) this.matched = 1;
      else out.push(b);
    }
    return Buffer.from(out);
  }
}
