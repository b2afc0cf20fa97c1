/**
 * The cluster's address arithmetic and each network's allocator, in memory: which blocks of the network's subnet
 * which node leased, and which addresses are taken. It decides; the caller makes its decisions durable in etcd
 * (blocks and addresses each under a key written only if absent) and undoes them here when etcd refuses.
 * In each block the first address is the block's own (with vxlan, the holding host's VTEP), the second the host's
 * gateway on the network's bridge, the last is not used, and containers get the others.
 */
import { conflict, invalid } from '../../lib/errors.js';

export const ipToInt = (ip: string): number => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
export const intToIp = (n: number): string => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIp(s: string): boolean {
  return IPV4.test(s);
}

export interface Cidr {
  start: number;
  prefix: number;
}

export const cidrSize = (c: Cidr): number => 2 ** (32 - c.prefix);
export const cidrText = (c: Cidr): string => `${intToIp(c.start)}/${c.prefix}`;
export const contains = (outer: Cidr, inner: Cidr): boolean => inner.prefix >= outer.prefix && inner.start >= outer.start && inner.start + cidrSize(inner) <= outer.start + cidrSize(outer);
export const overlaps = (a: Cidr, b: Cidr): boolean => a.start < b.start + cidrSize(b) && b.start < a.start + cidrSize(a);
export const holds = (c: Cidr, ip: number): boolean => ip >= c.start && ip < c.start + cidrSize(c);

/** `A.B.C.D/N`, its host bits zero (Docker refuses such a subnet too). */
export function parseCidr(text: string, what = 'subnet'): Cidr {
  const [ip, p, extra] = text.split('/');
  const prefix = Number(p);
  if (extra !== undefined || !ip || !isIp(ip) || !/^\d+$/.test(p ?? '') || prefix > 32) throw invalid(`invalid ${what} ${text}: use A.B.C.D/N`);
  const start = ipToInt(ip);
  if (start % 2 ** (32 - prefix) !== 0) throw invalid(`invalid ${what} ${text}: its host bits are set (${intToIp(start - (start % 2 ** (32 - prefix)))}/${prefix}?)`);
  return { start, prefix };
}

/** One network's blocks and addresses. */
export class NetworkIpam {
  readonly subnet: Cidr;
  /** Block start → the node that leased it. */
  readonly blocks = new Map<number, string>();
  /** Node → its blocks' starts, in lease order. */
  readonly byNode = new Map<string, number[]>();
  /** Taken addresses (also those being written: a choice holds its address until etcd answered). */
  private readonly used = new Set<number>();
  /** Taken addresses per block: a full block is skipped without scanning it. */
  private readonly usedIn = new Map<number, number>();
  /** Where the search for a free block resumes: blocks are leased in order, so the next free one is near. */
  private cursor = 0;

  constructor(
    subnet: string,
    readonly blockPrefix: number,
  ) {
    this.subnet = parseCidr(subnet);
    if (blockPrefix < this.subnet.prefix || blockPrefix > 30) throw invalid(`block size /${blockPrefix}: must be from /${this.subnet.prefix} (the network's) to /30`);
  }

  get blockSize(): number {
    return 2 ** (32 - this.blockPrefix);
  }
  get blockCount(): number {
    return cidrSize(this.subnet) / this.blockSize;
  }
  /** The start of the block an address falls in. */
  blockOf(ip: number): number {
    return ip - ((ip - this.subnet.start) % this.blockSize);
  }
  blockCidr(start: number): string {
    return `${intToIp(start)}/${this.blockPrefix}`;
  }

  /** A container may have it: in the subnet, none of a block's first two (its own, the gateway) nor its last address. */
  checkAddress(ip: string): number {
    if (!isIp(ip)) throw invalid(`invalid IPv4 address: ${ip}`);
    const n = ipToInt(ip);
    if (!holds(this.subnet, n)) throw invalid(`no configured subnet contains IP address ${ip}: the network's subnet is ${cidrText(this.subnet)}`);
    const off = n - this.blockOf(n);
    if (off <= 1 || off === this.blockSize - 1) throw invalid(`${ip} is reserved: in each /${this.blockPrefix} block the first address is the block's, the second a host's gateway, and the last is not used`);
    return n;
  }

  lease(start: number, node: string): void {
    const had = this.blocks.get(start);
    if (had === node) return;
    if (had !== undefined) this.byNode.get(had)?.splice(this.byNode.get(had)!.indexOf(start), 1);
    this.blocks.set(start, node);
    const mine = this.byNode.get(node);
    if (mine) mine.push(start);
    else this.byNode.set(node, [start]);
  }

  unlease(start: number): void {
    const node = this.blocks.get(start);
    if (node === undefined) return;
    this.blocks.delete(start);
    const mine = this.byNode.get(node)!;
    mine.splice(mine.indexOf(start), 1);
    if (!mine.length) this.byNode.delete(node);
    this.cursor = Math.min(this.cursor, (start - this.subnet.start) / this.blockSize);
  }

  /** A free block to lease, or undefined when every block is leased. */
  freeBlock(): number | undefined {
    const count = this.blockCount;
    for (let i = 0; i < count; i++) {
      const k = (this.cursor + i) % count;
      const start = this.subnet.start + k * this.blockSize;
      if (!this.blocks.has(start)) {
        this.cursor = k;
        return start;
      }
    }
    return undefined;
  }

  take(ip: number): void {
    if (this.used.has(ip)) return;
    this.used.add(ip);
    const b = this.blockOf(ip);
    this.usedIn.set(b, (this.usedIn.get(b) ?? 0) + 1);
  }

  release(ip: number): void {
    if (!this.used.delete(ip)) return;
    const b = this.blockOf(ip);
    const n = this.usedIn.get(b)! - 1;
    if (n) this.usedIn.set(b, n);
    else this.usedIn.delete(b);
  }

  /** A free address in the node's blocks, taken; undefined when they are full (the node needs another block). */
  pick(node: string): number | undefined {
    const usable = this.blockSize - 3;
    for (const b of this.byNode.get(node) ?? []) {
      if ((this.usedIn.get(b) ?? 0) >= usable) continue;
      for (let ip = b + 2; ip < b + this.blockSize - 1; ip++) {
        if (!this.used.has(ip)) {
          this.take(ip);
          return ip;
        }
      }
    }
    return undefined;
  }

  /** What a fixed address needs: taken anywhere is Docker's 409; else the node that holds its block, if any. */
  holderOf(ip: string): { addr: number; node?: string } {
    const addr = this.checkAddress(ip);
    if (this.used.has(addr)) throw conflict(`Address already in use: ${ip}`);
    return { addr, node: this.blocks.get(this.blockOf(addr)) };
  }

  usedCount(): number {
    return this.used.size;
  }
}
