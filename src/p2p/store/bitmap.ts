/** A fixed-size set of piece numbers, stored as bits so meta.json stays small for blobs with thousands of pieces. */
export class PieceSet {
  private readonly bits: Uint8Array;
  private n = 0;

  constructor(readonly size: number) {
    this.bits = new Uint8Array(Math.ceil(size / 8));
  }

  has(i: number): boolean {
    return i >= 0 && i < this.size && (this.bits[i >> 3]! & (1 << (i & 7))) !== 0;
  }

  add(i: number): void {
    if (this.has(i)) return;
    this.bits[i >> 3]! |= 1 << (i & 7);
    this.n++;
  }

  delete(i: number): void {
    if (!this.has(i)) return;
    this.bits[i >> 3]! &= ~(1 << (i & 7));
    this.n--;
  }

  clear(): void {
    this.bits.fill(0);
    this.n = 0;
  }

  count(): number {
    return this.n;
  }

  full(): boolean {
    return this.n === this.size;
  }

  list(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.size; i++) if (this.has(i)) out.push(i);
    return out;
  }

  toBase64(): string {
    return Buffer.from(this.bits).toString('base64');
  }

  /** Bits beyond size are ignored, so a bitmap from a corrupt file never yields out-of-range pieces. */
  static fromBase64(size: number, b64: string): PieceSet {
    const s = new PieceSet(size);
    const raw = Buffer.from(b64, 'base64');
    for (let i = 0; i < size; i++) if (i >> 3 < raw.length && (raw[i >> 3]! & (1 << (i & 7))) !== 0) s.add(i);
    return s;
  }
}
