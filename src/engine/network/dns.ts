import dgram from 'node:dgram';
import { promises as fs } from 'node:fs';
import { ip6ToBig, isIPv6 } from './ipnet.js';

/** Names a network's containers answer to, as the asking container (by its address) sees them: addresses of both families. */
export type NameLookup = (name: string, from: string) => string[];
/** Names beyond this engine (a cluster network's other hosts): asked when the lookup knows none; [] when nobody does. */
export type RemoteLookup = (name: string) => Promise<string[]>;

const A = 1;
const AAAA = 28;
const ANY = 255;

interface Question {
  name: string;
  type: number;
  end: number;
}

function readQuestion(msg: Buffer): Question | undefined {
  if (msg.length < 12 || msg.readUInt16BE(4) < 1) return undefined;
  const labels: string[] = [];
  let off = 12;
  for (;;) {
    if (off >= msg.length) return undefined;
    const len = msg[off]!;
    if (len === 0) {
      off++;
      break;
    }
    if (len > 63 || off + 1 + len > msg.length) return undefined; // no compression in a question we answer
    labels.push(msg.toString('latin1', off + 1, off + 1 + len));
    off += 1 + len;
  }
  if (off + 4 > msg.length) return undefined;
  return { name: labels.join('.').toLowerCase(), type: msg.readUInt16BE(off), end: off + 4 };
}

/** A reply to the query with its question and the given A and AAAA records (rcode 0, or 2 for SERVFAIL). */
function reply(msg: Buffer, q: Question, ips: string[], rcode: number): Buffer {
  const head = Buffer.from(msg.subarray(0, q.end));
  const rd = msg[2]! & 0x01;
  head[2] = 0x80 | (msg[2]! & 0x78) | 0x04 | rd; // QR, opcode, AA, RD
  head[3] = 0x80 | rcode; // RA
  head.writeUInt16BE(1, 4); // one question
  head.writeUInt16BE(ips.length, 6);
  head.writeUInt16BE(0, 8);
  head.writeUInt16BE(0, 10);
  const answers = ips.map((ip) => {
    const v6 = isIPv6(ip);
    const a = Buffer.alloc(v6 ? 28 : 16);
    a.writeUInt16BE(0xc00c, 0); // name: pointer to the question
    a.writeUInt16BE(v6 ? AAAA : A, 2);
    a.writeUInt16BE(1, 4); // IN
    a.writeUInt32BE(600, 6);
    a.writeUInt16BE(v6 ? 16 : 4, 10);
    if (v6) Buffer.from(ip6ToBig(ip).toString(16).padStart(32, '0'), 'hex').copy(a, 12);
    else ip.split('.').forEach((o, i) => (a[12 + i] = Number(o)));
    return a;
  });
  return Buffer.concat([head, ...answers]);
}

async function upstreams(): Promise<string[]> {
  const txt = await fs.readFile('/etc/resolv.conf', 'utf8').catch(() => '');
  return [...txt.matchAll(/^nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/gm)].map((m) => m[1]!);
}

/**
 * The embedded DNS responder of a user network: it listens on the network's gateway address (port 53, on the host),
 * answers A queries for the names and aliases of the containers on that network, then (given a remote lookup) the
 * names it does not know from beyond the engine, and forwards the rest to the host's resolvers.
 */
export class DnsResponder {
  private sock?: dgram.Socket;

  constructor(
    readonly address: string,
    private readonly lookup: NameLookup,
    private readonly remote?: RemoteLookup,
  ) {}

  get listening(): boolean {
    return !!this.sock;
  }

  async start(): Promise<void> {
    if (this.sock) return;
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: false });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(53, this.address, () => {
        s.off('error', reject);
        resolve();
      });
    });
    s.on('error', () => undefined);
    s.unref();
    s.on('message', (msg, rinfo) => void this.answer(msg, rinfo.address, rinfo.port));
    this.sock = s;
  }

  stop(): void {
    this.sock?.close();
    this.sock = undefined;
  }

  private async answer(msg: Buffer, host: string, port: number): Promise<void> {
    const s = this.sock;
    if (!s || msg.length < 12 || msg[2]! & 0x80) return; // not a query
    const q = readQuestion(msg);
    if (!q) return;
    const name = q.name.replace(/\.$/, '');
    let ips = this.lookup(name, host);
    if (!ips.length && this.remote) {
      ips = await this.remote(name).catch(() => []);
      if (s !== this.sock) return; // stopped meanwhile: sending on a closed socket throws
    }
    if (ips.length) {
      // a name of ours: its addresses of the family asked for (both for ANY); an empty answer for other types
      const wanted = ips.filter((ip) => q.type === ANY || q.type === (isIPv6(ip) ? AAAA : A));
      s.send(reply(msg, q, wanted, 0), port, host);
      return;
    }
    const fwd = await this.forward(msg);
    s.send(fwd ?? reply(msg, q, [], 2), port, host);
  }

  private async forward(msg: Buffer): Promise<Buffer | undefined> {
    for (const ns of await upstreams()) {
      const out = await new Promise<Buffer | undefined>((resolve) => {
        const c = dgram.createSocket('udp4');
        const done = (b?: Buffer) => {
          clearTimeout(t);
          c.close();
          resolve(b);
        };
        const t = setTimeout(() => done(undefined), 2000);
        c.on('error', () => done(undefined));
        c.on('message', (b) => done(b));
        c.send(msg, 53, ns);
      });
      if (out) return out;
    }
    return undefined;
  }
}
