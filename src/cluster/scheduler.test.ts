import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { isCode } from '../lib/errors.js';
import type { ReportedContainer } from '../lib/node-protocol.js';
import { ExternalScheduler, type ExternalRequest } from './external.js';
import { schedulingRequest } from './request.js';
import { filterNodes, place, type Candidate, type Request } from './scheduler.js';
import { ClusterState } from './state.js';

const GB = 1 << 30;
const node = (name: string, o: Partial<Candidate> = {}): Candidate => ({
  id: `id-${name}`, name, labels: {}, up: true, drained: false, capacity: { ncpu: 2, memTotal: 4 * GB }, containers: 0, reserved: { memory: 0, nanoCpus: 0 }, ...o,
});
const any: Request = { image: 'busybox', labels: {}, constraints: [], affinities: [], ports: [], memory: 0, nanoCpus: 0 };
const counts = (placed: Candidate[]) => placed.reduce<Record<string, number>>((a, n) => ({ ...a, [n.name]: (a[n.name] ?? 0) + 1 }), {});
const requestOf = (env: string[], labels: Record<string, string> = {}, hostConfig: object = {}) => schedulingRequest({ Image: 'busybox', Env: env, Labels: labels, HostConfig: hostConfig });

test('constraints come from the env (Swarm classic) and from com.sampan.constraint.* labels; the env keeps the rest', () => {
  const r = requestOf(['A=1', 'constraint:node==host2', 'constraint:disk!=hdd'], { 'com.sampan.constraint.zone': 'eu-*', 'com.sampan.constraint.gpu': '!=none', other: 'x' });
  assert.deepEqual(r.body.Env, ['A=1']);
  assert.deepEqual(r.req.constraints.map((c) => c.text), ['node==host2', 'disk!=hdd', 'zone==eu-*', 'gpu!=none']);
  assert.throws(() => requestOf(['constraint:node=host2']), (e) => isCode(e, 'INVALID_ARGUMENT'));
});

test('affinities come from the env and Swarm classic\'s labels (JSON arrays); the engine gets neither; a strategy label and fixed host ports are read', () => {
  const r = requestOf(['affinity:container==web', 'affinity:image!=~redis', 'B=2'], {
    'com.docker.swarm.affinities': '["tier==front"]', 'com.docker.swarm.constraints': '["node==host1"]', 'com.sampan.scheduler.strategy': 'binpack', keep: 'me',
  }, { PortBindings: { '80/tcp': [{ HostIp: '', HostPort: '8080' }], '53/udp': [{ HostIp: '127.0.0.1', HostPort: '53' }], '81/tcp': [{ HostPort: '' }] } });
  assert.deepEqual(r.body.Env, ['B=2']);
  assert.deepEqual(r.body.Labels, { 'com.sampan.scheduler.strategy': 'binpack', keep: 'me' });
  assert.deepEqual(r.req.affinities.map((a) => [a.key, a.op, a.soft, a.value]), [['container', '==', false, 'web'], ['image', '!=', true, 'redis'], ['tier', '==', false, 'front']]);
  assert.deepEqual(r.req.constraints.map((c) => c.text), ['node==host1']);
  assert.equal(r.req.strategy, 'binpack');
  assert.deepEqual(r.req.ports, [{ port: 8080, proto: 'tcp', ip: '', text: '8080/tcp' }, { port: 53, proto: 'udp', ip: '127.0.0.1', text: '53/udp' }]);
  assert.throws(() => requestOf([], { 'com.docker.swarm.affinities': 'container==web' }), /com\.docker\.swarm\.affinities: a JSON array/);
  assert.throws(() => requestOf([], { 'com.sampan.scheduler.strategy': 'fastest' }), (e) => isCode(e, 'INVALID_ARGUMENT'));
  assert.throws(() => requestOf(['affinity:container=web']), /invalid affinity/);
});

test('spread puts each replica on the node with the fewest containers: one pass, counting its own placements', () => {
  const nodes = [node('a', { containers: 2 }), node('b'), node('c')];
  assert.deepEqual(counts(place(nodes, any, 7)), { a: 1, b: 3, c: 3 });
  assert.deepEqual(counts(place([node('a'), node('b'), node('c')], any, 30)), { a: 10, b: 10, c: 10 });
});

test('binpack fills the fullest node that still fits; random stays within the candidates', () => {
  const nodes = [node('a', { containers: 1 }), node('b', { containers: 3 })];
  assert.deepEqual(counts(place(nodes, any, 4, 'binpack')), { b: 4 });
  // memory decides when the fullest is full
  const small = [node('a', { capacity: { ncpu: 2, memTotal: 2 * GB } }), node('b', { containers: 5, capacity: { ncpu: 2, memTotal: 1 * GB } })];
  assert.deepEqual(counts(place(small, { ...any, memory: GB }, 3, 'binpack')), { b: 1, a: 2 });
  let i = 0;
  const seq = [0.9, 0.1, 0.6];
  assert.deepEqual(place([node('a'), node('b')], any, 3, 'random', { random: () => seq[i++]! }).map((n) => n.name), ['b', 'a', 'b']);
});

test('down nodes, unmet constraints and reservations filter; nothing left is a 409 naming what failed', () => {
  const nodes = [node('host1', { labels: { zone: 'eu-1' } }), node('host2', { up: false }), node('host3', { labels: { zone: 'us' } })];
  const only = (text: string) => filterNodes(nodes, requestOf([`constraint:${text}`]).req).map((n) => n.name);
  assert.deepEqual(only('node==host3'), ['host3']);
  assert.deepEqual(only('node!=host1'), ['host3']);
  assert.deepEqual(only('zone==eu-*'), ['host1']);
  assert.deepEqual(only('zone==/^u/'), ['host3']);
  assert.deepEqual(only('zone==~mars'), ['host1', 'host3']);
  assert.throws(() => only('node==host2'), (e) => isCode(e, 'CONFLICT') && /node==host2/.test((e as Error).message));
  assert.throws(() => only('node==no-such-node'), /unable to find a node that satisfies the constraint node==no-such-node/);
  assert.throws(() => place(nodes, { ...any, memory: 5 * GB }, 1), (e) => isCode(e, 'CONFLICT') && /memory/.test((e as Error).message));
  // reservations are charged as a batch is placed: 4 GB nodes take 2 of 2 GB each
  assert.deepEqual(counts(place([node('a'), node('b')], { ...any, memory: 2 * GB }, 4)), { a: 2, b: 2 });
  assert.throws(() => place([node('a'), node('b')], { ...any, memory: 2 * GB }, 5), /only 4 of 5 replicas fit/);
  assert.throws(() => place([node('a', { up: false })], any, 1), /no node of the cluster is up/);
  assert.throws(() => place([node('a', { drained: true })], any, 1), /every node of the cluster that is up is drained/);
  assert.deepEqual(place([node('a', { drained: true }), node('b')], any, 2).map((n) => n.name), ['b', 'b']);
});

/** A cluster in memory: host1 runs web (tier=front) and has redis; host2 runs db and publishes 8080; host3 is empty. */
function cluster(): { st: ClusterState; nodes: Candidate[] } {
  const st = new ClusterState();
  const summary = (id: string, name: string, labels: Record<string, string> = {}, ports: ReportedContainer['Ports'] = []): ReportedContainer => ({
    Id: id, Names: [`/${name}`], Image: 'busybox', ImageID: 'sha256:1', Command: 'sleep', Created: 1, Ports: ports, Labels: labels, State: 'running', Status: 'Up',
    HostConfig: { NetworkMode: 'bridge' }, NetworkSettings: { Networks: {} }, Mounts: [],
    Facts: { Status: 'running', StartedAt: '', FinishedAt: '', ExitCode: 0, HasBeenStarted: true }, Reserved: { memory: 0, nanoCpus: 0 },
  });
  const rec = (name: string) => ({ id: `id-${name}`, name, labels: {}, api: '', addr: '', capacity: { ncpu: 2, memTotal: 4 * GB }, version: '', joinedAt: '', state: 'up' as const });
  const [h1, h2] = ['host1', 'host2', 'host3'].map((n) => st.upsertNode(rec(n)));
  st.setNodeContainers(h1!, [summary('aaaa1111', 'web', { tier: 'front' })]);
  st.setNodeContainers(h2!, [summary('bbbb2222', 'db', { tier: 'back' }, [{ IP: '0.0.0.0', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' }, { IP: '127.0.0.1', PrivatePort: 53, PublicPort: 53, Type: 'udp' }])]);
  st.setNodeImages(h1!, [{ Id: `sha256:${'c'.repeat(64)}`, RepoTags: ['redis:latest', 'redis:7'] }]);
  const nodes = [...st.nodes.values()].map((n) => node(n.rec.name, { containers: n.containers.size }));
  return { st, nodes };
}

test('affinity to a container (name, id, id prefix, glob), to a label and to an image; anti-affinity avoids; soft ones fall back', () => {
  const { st, nodes } = cluster();
  const where = (...env: string[]) => filterNodes(nodes, requestOf(env.map((e) => `affinity:${e}`)).req, st).map((n) => n.name);
  assert.deepEqual(where('container==web'), ['host1']);
  assert.deepEqual(where('container==aaaa1111'), ['host1']);
  assert.deepEqual(where('container==bbbb'), ['host2']);
  assert.deepEqual(where('container==w*'), ['host1']);
  assert.deepEqual(where('container==/^(web|db)$/'), ['host1', 'host2']);
  assert.deepEqual(where('container!=web'), ['host2', 'host3']);
  assert.deepEqual(where('tier==back'), ['host2']);
  assert.deepEqual(where('tier!=*'), ['host3']);
  assert.deepEqual(where('image==redis'), ['host1']);
  assert.deepEqual(where('image==redis:7'), ['host1']);
  assert.deepEqual(where('image==cccccccccccc'), ['host1']);
  assert.deepEqual(where('image==red*'), ['host1']);
  assert.deepEqual(where('image!=redis', 'container!=db'), ['host3']);
  assert.throws(() => where('container==nope'), /unable to find a node that satisfies the affinity container==nope/);
  // soft: preferred where it leaves a node, dropped where it does not
  assert.deepEqual(where('container==~db'), ['host2']);
  assert.deepEqual(where('container==~nope'), ['host1', 'host2', 'host3']);
  assert.deepEqual(where('image==~redis', 'container!=~web'), ['host1']);
  // a batch of 3 that must go with web all lands on host1
  assert.deepEqual(counts(place(nodes, requestOf(['affinity:container==web']).req, 3, 'spread', { holders: st })), { host1: 3 });
});

test('a fixed host port goes where it is free, once per node; a batch of more than the nodes with it free is a 409', () => {
  const { st, nodes } = cluster();
  const ports = (bindings: Record<string, Array<{ HostIp?: string; HostPort: string }>>) => requestOf([], {}, { PortBindings: bindings }).req;
  const p8080 = ports({ '80/tcp': [{ HostPort: '8080' }] });
  assert.deepEqual(filterNodes(nodes, p8080, st).map((n) => n.name), ['host1', 'host3']);
  // another protocol, or another address than the one bound, does not clash
  assert.equal(filterNodes(nodes, ports({ '80/udp': [{ HostPort: '8080' }] }), st).length, 3);
  assert.equal(filterNodes(nodes, ports({ '53/udp': [{ HostIp: '10.0.0.1', HostPort: '53' }] }), st).length, 3);
  assert.deepEqual(filterNodes(nodes, ports({ '53/udp': [{ HostPort: '53' }] }), st).map((n) => n.name), ['host1', 'host3']);
  assert.deepEqual(counts(place(nodes, p8080, 2, 'binpack', { holders: st })), { host1: 1, host3: 1 });
  assert.throws(() => place(nodes, p8080, 3, 'spread', { holders: st }), (e) => isCode(e, 'CONFLICT') && /only 2 of 3 replicas can be placed: each publishes port 8080\/tcp, free on 2 nodes/.test((e as Error).message));
  assert.throws(() => filterNodes(nodes, { ...p8080, constraints: requestOf(['constraint:node==host2']).req.constraints }, st), /unable to find a node with port 8080\/tcp available/);
});

/** A one-shot HTTP server answering each POST with `answer(body)`; its URL and the bodies it got. */
async function externalServer(answer: (b: ExternalRequest, res: http.ServerResponse) => void): Promise<{ url: string; got: ExternalRequest[]; close: () => void }> {
  const got: ExternalRequest[] = [];
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      got.push(JSON.parse(text) as ExternalRequest);
      answer(got.at(-1)!, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/place`, got, close: () => server.close() };
}

test('an external scheduler gets the request and the filtered candidates, and its placements are taken; a bad answer is a 503 naming it', async () => {
  const nodes = [node('a'), node('b', { containers: 4 }), node('c', { up: false })];
  const { req } = requestOf(['constraint:node!=x', 'affinity:image==~busybox'], { app: 'x' }, { Memory: GB, PortBindings: { '80/tcp': [{ HostPort: '8080' }] } });
  let reply: (b: ExternalRequest) => unknown = (b) => ({ placements: b.candidates.map((c) => c.id).reverse() });
  const srv = await externalServer((b, res) => {
    const r = reply(b);
    if (r === 'hang') return; // no answer: the manager's timeout ends it
    if (typeof r === 'string') res.writeHead(r === 'boom' ? 500 : 200).end(r);
    else res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(r));
  });
  try {
    const ext = new ExternalScheduler(srv.url, 500);
    const candidates = filterNodes(nodes, req);
    assert.deepEqual((await ext.place(req, 2, candidates)).map((n) => n.name), ['b', 'a']);
    const sent = srv.got[0]!;
    assert.equal(sent.count, 2);
    assert.deepEqual(sent.candidates.map((c) => [c.name, c.containers, c.capacity.memTotal]), [['a', 0, 4 * GB], ['b', 4, 4 * GB]]);
    assert.deepEqual({ ...sent.request, labels: undefined }, { image: 'busybox', labels: undefined, constraints: ['node!=x'], affinities: ['image==~busybox'], ports: ['8080/tcp'], memory: GB, nanoCpus: 0 });
    assert.deepEqual(sent.request.labels, { app: 'x' });
    const fails = async (answer: (b: ExternalRequest) => unknown, why: RegExp) => {
      reply = answer;
      await assert.rejects(ext.place(req, 2, candidates), (e) => isCode(e, 'UNAVAILABLE') && (e as Error).message.includes(srv.url) && why.test((e as Error).message));
    };
    await fails(() => ({ placements: ['id-a'] }), /no "placements" array of 2/);
    await fails(() => ({ placements: ['id-a', 'id-c'] }), /"id-c", which is not one of the candidates/);
    await fails(() => ({ placements: ['id-a', 'id-a'] }), /two replicas publishing port 8080\/tcp on one node/);
    await fails(() => 'boom', /answered 500: boom/);
    await fails(() => 'placements: a, b', /answered something that is not JSON/);
    await fails(() => 'hang', /did not answer within 500 ms/);
    srv.close();
    await assert.rejects(ext.place(req, 1, candidates), (e) => isCode(e, 'UNAVAILABLE') && /could not be reached/.test((e as Error).message));
  } finally {
    srv.close();
  }
});
