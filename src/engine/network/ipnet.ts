import net from 'node:net';

/** IPv4 arithmetic for subnets, gateways and ranges. */
export function ipToInt(ip: string): number {
  const p = ip.split('.').map(Number);
  if (p.length !== 4 || p.some((n) => !Number.isInteger(n) || n < 0 || n > 255)) throw new Error(`invalid IPv4 address: ${ip}`);
  return ((p[0]! << 24) >>> 0) + (p[1]! << 16) + (p[2]! << 8) + p[3]!;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface Cidr {
  base: number;
  prefix: number;
  size: number;
}

export function parseCidr(s: string): Cidr {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(s);
  if (!m) throw new Error(`invalid CIDR: ${s}`);
  const prefix = Number(m[2]);
  if (prefix < 8 || prefix > 30) throw new Error(`invalid prefix length in ${s}`);
  const size = 2 ** (32 - prefix);
  const base = ipToInt(m[1]!) - (ipToInt(m[1]!) % size);
  return { base, prefix, size };
}

export function cidrString(c: Cidr): string {
  return `${intToIp(c.base)}/${c.prefix}`;
}

export function contains(c: Cidr, ip: string | number): boolean {
  const n = typeof ip === 'number' ? ip : ipToInt(ip);
  return n >= c.base && n < c.base + c.size;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.base < b.base + b.size && b.base < a.base + a.size;
}

/** IPv6 arithmetic for an IPv6 network's subnet, gateway, range and auxiliary addresses. */
export interface Cidr6 {
  base: bigint;
  prefix: number;
}

export const isIPv6 = (s: string): boolean => s.includes(':');

export function ip6ToBig(ip: string): bigint {
  if (!net.isIPv6(ip) || ip.includes('.') || ip.includes('%')) throw new Error(`invalid IPv6 address: ${ip}`);
  const [head = '', tail] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((n, g) => (n << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** The canonical (RFC 5952) text of an address, as Go's net.IP prints it and so as host-local names its leases. */
export function bigToIp6(n: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => ((n >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
  return new URL(`http://[${groups.join(':')}]`).hostname.slice(1, -1);
}

export function parseCidr6(s: string): Cidr6 {
  const m = /^([0-9a-fA-F:]+)\/(\d+)$/.exec(s);
  if (!m) throw new Error(`invalid CIDR: ${s}`);
  const prefix = Number(m[2]);
  if (prefix < 8 || prefix > 126) throw new Error(`invalid prefix length in ${s}`);
  const host = (1n << BigInt(128 - prefix)) - 1n;
  return { base: ip6ToBig(m[1]!) & ~host & ((1n << 128n) - 1n), prefix };
}

export const cidr6String = (c: Cidr6): string => `${bigToIp6(c.base)}/${c.prefix}`;
export const cidr6Last = (c: Cidr6): bigint => c.base + (1n << BigInt(128 - c.prefix)) - 1n;

export function contains6(c: Cidr6, ip: string | bigint): boolean {
  const n = typeof ip === 'bigint' ? ip : ip6ToBig(ip);
  return n >= c.base && n <= cidr6Last(c);
}

export const overlaps6 = (a: Cidr6, b: Cidr6): boolean => a.base <= cidr6Last(b) && b.base <= cidr6Last(a);

/** Is the address inside the subnet (either family; an address of the other family is not)? */
export function inSubnet(subnet: string, ip: string): boolean {
  if (isIPv6(subnet) !== isIPv6(ip)) return false;
  return isIPv6(subnet) ? contains6(parseCidr6(subnet), ip) : contains(parseCidr(subnet), ip);
}
