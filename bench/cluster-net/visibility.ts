/**
 * The visibility part of bench/cluster-net/run.sh (issue 17, "Measure"): how long after a container starts the
 * service registry lists it and the cluster's DNS answers its name. Run inside a prober container's network
 * namespace (`nsenter --net=/proc/PID/ns/net node …`), so that its DNS questions come from that container's address
 * to its resolver, as a `nslookup NAME` there would; the manager's socket is a file, reached from any namespace.
 *   1. opens the registry watch (`GET /sampan/v1/registry?watch=1`, server-sent events) and waits for its snapshot;
 *   2. creates and starts N containers `PREFIX-i` (busybox sleep) through the manager's Docker API, as `docker run -d`
 *      does (create, then start), INFLIGHT at a time: the scheduler spreads them over the hosts;
 *   3. from just before each create until an answer with an address, asks the resolver for the name every POLL_MS
 *      (a question is not waited for: a name not known yet is forwarded upstream, which in the testbed never answers,
 *      so a client waiting for that answer would measure its own timeout instead of the name's arrival);
 *   4. per container: State.StartedAt (inspect), when the start call returned, its first `add` event, its first DNS
 *      answer. Prints one JSON line per container, then a summary line `{"summary": …}` (ms, p50/p99/max).
 * Usage: node dist/bench/cluster-net/visibility.js SOCKET RESOLVER_IP N [INFLIGHT=5] [PREFIX=vis] [POLL_MS=50]
 */
import dgram from 'node:dgram';
import http from 'node:http';

const [SOCK, RESOLVER, N_ = '50', INFLIGHT_ = '5', PREFIX = 'vis', POLL_ = '50'] = process.argv.slice(2);
if (!SOCK || !RESOLVER) throw new Error('usage: visibility.js SOCKET RESOLVER_IP N [INFLIGHT] [PREFIX] [POLL_MS]');
const [N, INFLIGHT, POLL_MS] = [N_, INFLIGHT_, POLL_].map(Number) as [number, number, number];
const DEADLINE_MS = 20_000; // after its start, a name not seen by then counts as never seen

interface Row { name: string; node?: string; startedAt?: number; startReturned?: number; add?: number; dns?: number; error?: string }

function call(method: string, path: string, body?: unknown): Promise<any> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: SOCK, method, path, headers: { 'Content-Type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => {
        if ((res.statusCode ?? 500) >= 300) reject(new Error(`${method} ${path}: ${res.statusCode} ${text.trim()}`));
        else resolve(text ? JSON.parse(text) : undefined);
      });
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** Calls onEvent for each server-sent event; resolves once the snapshot came. */
function watch(onEvent: (event: string, data: any) => void): Promise<http.ClientRequest> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath: SOCK, path: '/sampan/v1/registry?watch=1', agent: false }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`watch: ${res.statusCode}`));
      let buf = '';
      res.setEncoding('utf8').on('data', (c: string) => {
        buf += c;
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (!event || data === undefined) continue; // a `:` keep-alive
          onEvent(event, JSON.parse(data));
          if (event === 'snapshot') resolve(req);
        }
      });
    });
    req.on('error', reject);
  });
}

function query(id: number, name: string): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(id, 0);
  head.writeUInt16BE(0x0100, 2); // recursion desired, as nslookup asks
  head.writeUInt16BE(1, 4);
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  return Buffer.concat([head, ...labels, Buffer.from([0, 0, 1, 0, 1])]); // root, type A, class IN
}

const pct = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? Math.round(s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!) : null;
};

async function main(): Promise<void> {
  const rows = new Map<string, Row>();
  const polling = new Set<string>();
  const byQuery = new Map<number, string>();
  let nextId = 0;

  const watching = await watch((event, data) => {
    const r = event === 'add' ? rows.get(data.name) : undefined;
    if (r && r.add === undefined) r.add = Date.now();
  });
  const udp = dgram.createSocket('udp4');
  udp.on('message', (b) => {
    const name = byQuery.get(b.readUInt16BE(0));
    const r = name === undefined ? undefined : rows.get(name);
    if (!r || r.dns !== undefined || (b[3]! & 0x0f) !== 0 || b.readUInt16BE(6) === 0) return;
    r.dns = Date.now();
    polling.delete(r.name);
  });
  await new Promise<void>((resolve) => udp.bind(0, resolve));
  const poll = setInterval(() => {
    for (const name of polling) {
      const id = nextId++ & 0xffff;
      byQuery.set(id, name);
      udp.send(query(id, name), 53, RESOLVER);
    }
  }, POLL_MS);

  let next = 0;
  await Promise.all(Array.from({ length: INFLIGHT }, async () => {
    while (next < N) {
      const r: Row = { name: `${PREFIX}-${++next}` };
      rows.set(r.name, r);
      polling.add(r.name);
      try {
        const { Id } = await call('POST', `/containers/create?name=${r.name}`, { Image: 'busybox', Cmd: ['sleep', '600'] });
        await call('POST', `/containers/${Id}/start`);
        r.startReturned = Date.now();
        const c = await call('GET', `/containers/${Id}/json`);
        r.startedAt = Date.parse(c.State.StartedAt);
        r.node = c.Node?.Name;
      } catch (err) {
        r.error = (err as Error).message;
        polling.delete(r.name);
      }
    }
  }));
  // the last ones' names may still be on their way
  const until = Date.now() + DEADLINE_MS;
  while (Date.now() < until && [...rows.values()].some((r) => !r.error && (r.add === undefined || r.dns === undefined))) {
    await new Promise((res) => setTimeout(res, 100));
  }
  clearInterval(poll);
  udp.close();
  watching.destroy();

  const since = (r: Row, t?: number) => (t === undefined || r.startedAt === undefined ? undefined : t - r.startedAt);
  const ok = [...rows.values()].filter((r) => !r.error);
  const stat = (f: (r: Row) => number | undefined) => {
    const xs = ok.map(f).filter((x): x is number => x !== undefined);
    return { n: xs.length, p50: pct(xs, 0.5), p99: pct(xs, 0.99), max: xs.length ? Math.max(...xs) : null };
  };
  for (const r of rows.values()) {
    console.log(JSON.stringify({ ...r, startMs: since(r, r.startReturned), addMs: since(r, r.add), dnsMs: since(r, r.dns) }));
  }
  console.log(JSON.stringify({
    summary: {
      n: N, inflight: INFLIGHT, pollMs: POLL_MS, failed: rows.size - ok.length, nodes: new Set(ok.map((r) => r.node)).size,
      start: stat((r) => since(r, r.startReturned)), add: stat((r) => since(r, r.add)), dns: stat((r) => since(r, r.dns)),
    },
  }));
}

await main();
