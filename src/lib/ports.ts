/**
 * Free TCP ports for a process started later (etcd members, a testbed's managers, a test's servers). They are picked
 * below the kernel's ephemeral range: a port the kernel handed out for bind(0) is just as likely to be given to an
 * outgoing connection's source port before the process binds it (seen as a manager that exits at start with
 * EADDRINUSE on a busy machine); a port below the range is only taken by someone who asks for it by number.
 */
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';

/** Lowest port handed out: above the well-known and registered ports most services use. */
const LOW = 10_000;

/** The first port of net.ipv4.ip_local_port_range (Linux's default 32768). */
function ephemeralStart(): number {
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return first > LOW + 1000 ? first : 32_768;
  } catch {
    return 32_768;
  }
}

const listen = (port: number) => new Promise<net.Server | undefined>((resolve) => {
  const s = net.createServer();
  s.once('error', () => resolve(undefined));
  // every address: a port someone holds on any of them is not free
  s.listen(port, '0.0.0.0', () => resolve(s));
});

/** Ports this process has handed out: the same random pick twice would give two callers one port. */
const handedOut = new Set<number>();

/** N distinct ports that nothing listens on now, none handed out before by this process. */
export async function freePorts(n: number): Promise<number[]> {
  const high = ephemeralStart() - 1;
  const held: net.Server[] = [];
  const out: number[] = [];
  try {
    for (let tries = 0; out.length < n; tries++) {
      if (tries > 1000 + 10 * n) throw new Error(`no ${n} free ports between ${LOW} and ${high}`);
      const port = LOW + randomInt(high - LOW + 1);
      if (handedOut.has(port)) continue;
      const s = await listen(port);
      if (!s) continue;
      held.push(s);
      handedOut.add(port);
      out.push(port);
    }
  } finally {
    await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
  }
  return out;
}
