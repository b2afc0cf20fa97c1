/**
 * The pieces a peer holds, as a growable bitset: the parent policy compares every candidate's pieces
 * with the child's on each progress report, so "how many of yours do I lack" must be a few word ops,
 * not a walk over a Set.
 */
export class PieceSet {
  private words: Uint32Array;
  private n = 0;

  constructor(capacity = 0) {
    this.words = new Uint32Array(Math.max(1, Math.ceil(capacity / 32)));
  }

  static of(pieces: Iterable<number>): PieceSet {
    const s = new PieceSet();
    for (const p of pieces) s.add(p);
    return s;
  }

  /** All of 0..count-1. */
  static full(count: number): PieceSet {
    const s = new PieceSet(count);
    for (let i = 0; i < count; i++) s.add(i);
    return s;
  }

  get size(): number {
    return this.n;
  }

  has(p: number): boolean {
    const w = p >>> 5;
    return w < this.words.length && (this.words[w]! & (1 << (p & 31))) !== 0;
  }

  /** Adds p; true when it was not there yet. */
  add(p: number): boolean {
    const w = p >>> 5;
    if (w >= this.words.length) {
      const grown = new Uint32Array(Math.max(w + 1, this.words.length * 2));
      grown.set(this.words);
      this.words = grown;
    }
    const bit = 1 << (p & 31);
    if (this.words[w]! & bit) return false;
    this.words[w]! |= bit;
    this.n++;
    return true;
  }

  /** How many pieces this set holds that `other` lacks. */
  countMissingFrom(other: PieceSet): number {
    let c = 0;
    const a = this.words;
    const b = other.words;
    for (let i = 0; i < a.length; i++) {
      const x = a[i]! & ~(i < b.length ? b[i]! : 0);
      if (x) c += popcount(x);
    }
    return c;
  }

  toArray(): number[] {
    const out: number[] = [];
    for (let w = 0; w < this.words.length; w++) {
      let x = this.words[w]!;
      while (x) {
        const low = x & -x;
        out.push(w * 32 + 31 - Math.clz32(low));
        x ^= low;
      }
    }
    return out;
  }

  /** "0-41,43,50-52": the debug view's compact form. */
  ranges(): string {
    const parts: string[] = [];
    const a = this.toArray();
    for (let i = 0; i < a.length; ) {
      let j = i;
      while (j + 1 < a.length && a[j + 1] === a[j]! + 1) j++;
      parts.push(i === j ? `${a[i]}` : `${a[i]}-${a[j]}`);
      i = j + 1;
    }
    return parts.join(',');
  }
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}
