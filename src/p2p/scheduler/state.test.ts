import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isCode } from '../../lib/errors.js';
import type { AnnounceRequest, TaskMeta } from '../protocol.js';
import { SchedulerState, type StateOptions } from './state.js';

const T = `sha256:${'ab'.repeat(32)}`;
const T2 = `sha256:${'cd'.repeat(32)}`;
const URL_ = 'http://127.0.0.1:5000/v2/app/blobs/' + T;
const hex = (i: number) => i.toString(16).padStart(64, '0');

function meta(pieces: number, known = pieces): TaskMeta {
  return { size: pieces * 1024 * 1024, pieceSize: 1024 * 1024, pieceDigests: Array.from({ length: known }, (_, i) => hex(i)) };
}

function setup(o: Partial<StateOptions> = {}) {
  let now = 1_000_000;
  const events: string[] = [];
  const s = new SchedulerState({ parents: 4, childrenPerSlot: 1, seedStallMs: 10_000, backToSourceLimit: 2, blockMs: 60_000, peerIdleMs: 600_000, taskIdleMs: 86_400_000, now: () => now, ...o });
  s.setListener({ peerFinished: (t, p) => events.push(`finished ${p}`), peerFailed: (t, p, why) => events.push(`failed ${p}: ${why}`) });
  const ann = (peerId: string, extra: Partial<AnnounceRequest> = {}, task = T) => s.announce(task, { peerId, addr: `http://${peerId}:65002`, url: URL_, uploadSlots: 4, ...extra });
  return { s, ann, events, tick: (ms: number) => (now += ms) };
}

/** Host children counts agree with the links children hold (over all tasks). */
function checkLinks(s: SchedulerState, tasks = [T]) {
  const links = new Map<string, number>();
  for (const t of tasks) {
    let v;
    try {
      v = s.view(t);
    } catch {
      continue;
    }
    for (const p of v.peers) for (const id of p.parents) links.set(id, (links.get(id) ?? 0) + 1);
  }
  for (const h of s.hosts.values()) assert.equal(h.children, links.get(h.peerId) ?? 0, `children of ${h.peerId}`);
}

describe('scheduler state: seeds and parents', () => {
  it('the first announcer is the seed; the next get it as a parent, and its meta as it reports', () => {
    const { s, ann } = setup();
    const a = ann('seed');
    assert.equal(a.role, 'seed');
    assert.deepEqual(a.parents, []);
    const b = ann('c1', { zone: 'z1' });
    assert.equal(b.role, 'child');
    assert.deepEqual(b.parents, [{ peerId: 'seed', addr: 'http://seed:65002' }]);
    assert.equal(b.meta, undefined);
    s.progress(T, 'seed', { meta: meta(10, 3), pieces: [0, 1, 2] });
    const r = s.progress(T, 'c1', {});
    assert.deepEqual(r.meta, meta(10, 3));
    assert.equal(r.backToSource, undefined);
    const v = s.view(T);
    assert.deepEqual(v.meta, { size: 10 * 1024 * 1024, pieceSize: 1024 * 1024, pieces: 10, digestsKnown: 3 });
    assert.deepEqual(
      v.peers.map((p) => [p.peerId, p.role, p.pieces, p.ranges, p.children]),
      [
        ['seed', 'seed', 3, '0-2', 1],
        ['c1', 'child', 0, '', 0],
      ],
    );
    checkLinks(s);
  });

  it('a finished child drops its parents; the seed finishing makes it the top parent', () => {
    const { s, ann, events } = setup();
    ann('seed');
    ann('c1');
    ann('c2');
    s.progress(T, 'seed', { meta: meta(4), pieces: [0, 1, 2, 3], finished: true });
    assert.deepEqual(events, ['finished seed']);
    const r = s.progress(T, 'c1', { pieces: [0, 1, 2, 3] });
    // all pieces held: finished without saying so
    assert.deepEqual(r.parents, []);
    assert.deepEqual(events, ['finished seed', 'finished c1']);
    const v = s.view(T).peers.find((p) => p.peerId === 'c1')!;
    assert.equal(v.finished, true);
    // finished peers first: the seed and c1, nobody else is left
    assert.deepEqual(new Set(s.progress(T, 'c2', {}).parents.map((p) => p.peerId)), new Set(['seed', 'c1']));
    checkLinks(s);
  });

  it('progress and leave for unknown tasks and peers are NOT_FOUND (peers announce again)', () => {
    const { s, ann } = setup();
    assert.throws(() => s.progress(T, 'x', {}), (e) => isCode(e, 'NOT_FOUND'));
    ann('seed');
    assert.throws(() => s.progress(T, 'x', {}), (e) => isCode(e, 'NOT_FOUND'));
    assert.throws(() => s.leave(T, 'x'), (e) => isCode(e, 'NOT_FOUND'));
    assert.throws(() => s.view(T2), (e) => isCode(e, 'NOT_FOUND'));
  });

  it('pieces beyond the blob and a meta with too many digests are refused', () => {
    const { s, ann } = setup();
    ann('seed', { meta: meta(3) });
    assert.throws(() => s.progress(T, 'seed', { pieces: [3] }), (e) => isCode(e, 'INVALID_ARGUMENT'));
    assert.throws(() => ann('c', { pieces: [7] }), (e) => isCode(e, 'INVALID_ARGUMENT'));
    assert.equal(s.view(T).peers.length, 1);
    // refused before anything is made of it
    assert.throws(() => ann('x', { pieces: [9], meta: meta(3) }, T2), (e) => isCode(e, 'INVALID_ARGUMENT'));
    assert.throws(() => s.view(T2), (e) => isCode(e, 'NOT_FOUND'));
    // reported before the size was known: dropped when the seed's meta comes, the seed is not refused for it
    const { s: s2, ann: ann2 } = setup();
    ann2('seed');
    ann2('early', { pieces: [1, 50] });
    s2.progress(T, 'seed', { meta: meta(10), pieces: [0] });
    assert.equal(s2.view(T).peers.find((p) => p.peerId === 'early')!.ranges, '1');
  });

  it('a meta that contradicts the task\'s is ignored', () => {
    const { s, ann } = setup();
    ann('seed', { meta: meta(3, 2) });
    ann('c');
    s.progress(T, 'c', { meta: { ...meta(3, 3), pieceDigests: [hex(9), hex(1), hex(2)] } });
    assert.equal(s.view(T).meta!.digestsKnown, 2);
    s.progress(T, 'c', { meta: meta(3, 3) });
    assert.equal(s.view(T).meta!.digestsKnown, 3);
  });
});

describe('scheduler state: restart', () => {
  it('after state loss, peers announce again with what they hold and carry on', () => {
    const { s, ann, events } = setup();
    // a fresh scheduler: the finished peer comes back first and is recorded as finished
    const a = ann('old-child', { finished: true, pieces: [0, 1, 2, 3, 4], meta: meta(5) });
    assert.equal(a.role, 'seed');
    assert.deepEqual(events, ['finished old-child']);
    const b = ann('partial', { pieces: [0, 1] });
    assert.equal(b.role, 'child');
    assert.deepEqual(b.meta, meta(5));
    assert.equal(b.parents[0]!.peerId, 'old-child');
    // a partial peer is a fine parent too
    const c = ann('new');
    assert.deepEqual(new Set(c.parents.map((p) => p.peerId)), new Set(['old-child', 'partial']));
    const v = s.view(T);
    assert.deepEqual(
      v.peers.map((p) => [p.peerId, p.role, p.pieces, p.finished]),
      [
        ['old-child', 'seed', 5, true],
        ['partial', 'child', 2, false],
        ['new', 'child', 0, false],
      ],
    );
    assert.equal(v.stalled, false);
  });

  it('announcing again replaces what the scheduler knew of the peer (and keeps its role)', () => {
    const { s, ann } = setup();
    ann('seed', { meta: meta(8) });
    ann('c');
    s.progress(T, 'c', { pieces: [0, 1, 2] });
    assert.equal(ann('seed').role, 'seed');
    const r = ann('c', { pieces: [0] });
    assert.equal(r.role, 'child');
    assert.equal(s.view(T).peers.find((p) => p.peerId === 'c')!.pieces, 1);
    checkLinks(s);
  });
});

describe('scheduler state: a stalled seed', () => {
  it('after the stall time, at most N children are sent to the upstream, one stall window apart', () => {
    const { s, ann, tick } = setup({ seedStallMs: 10_000, backToSourceLimit: 2 });
    ann('seed');
    for (const c of ['c1', 'c2', 'c3', 'c4']) ann(c);
    s.progress(T, 'seed', { meta: meta(100, 1), pieces: [0] });
    tick(5_000);
    s.progress(T, 'seed', { pieces: [1] });
    tick(9_000);
    assert.equal(s.progress(T, 'c1', {}).backToSource, undefined, 'the seed got a piece 9 s ago');
    tick(1_000);
    assert.equal(s.progress(T, 'c1', {}).backToSource, true);
    // granted once, kept; the others wait for the new source to stall too
    assert.equal(s.progress(T, 'c1', {}).backToSource, true);
    assert.equal(s.progress(T, 'c2', {}).backToSource, undefined);
    tick(10_000);
    assert.equal(s.progress(T, 'c2', {}).backToSource, true);
    tick(10_000);
    assert.equal(s.progress(T, 'c3', {}).backToSource, undefined, 'the limit is 2');
    assert.equal(s.progress(T, 'c4', {}).backToSource, undefined);
    assert.equal(s.progress(T, 'seed', {}).backToSource, undefined, 'never the seed');
    assert.equal(s.stats.backToSource, 2);
    const v = s.view(T);
    assert.equal(v.backToSourceGrants, 2);
    assert.deepEqual(v.peers.filter((p) => p.backToSource).map((p) => p.peerId), ['c1', 'c2']);
  });

  it('a source getting pieces is no stall; a finished peer ends any stall', () => {
    const { s, ann, tick } = setup({ seedStallMs: 10_000 });
    ann('seed');
    ann('c1');
    for (let i = 0; i < 5; i++) {
      tick(6_000);
      s.progress(T, 'seed', { pieces: [i] });
      assert.equal(s.progress(T, 'c1', {}).backToSource, undefined);
    }
    s.progress(T, 'seed', { meta: meta(5), finished: true });
    tick(60_000);
    assert.equal(s.progress(T, 'c1', {}).backToSource, undefined);
  });

  it('a seed that leaves or gives up: a child may go to the upstream at once', () => {
    const { s, ann, events } = setup();
    ann('seed');
    ann('c1');
    s.progress(T, 'seed', { failedTask: true });
    assert.deepEqual(events, ['failed seed: gave up on the P2P path']);
    assert.equal(s.progress(T, 'c1', {}).backToSource, true);
    const { s: s2, ann: ann2 } = setup();
    ann2('seed');
    ann2('c1');
    s2.leave(T, 'seed');
    assert.equal(s2.progress(T, 'c1', {}).backToSource, true);
  });

  it('with no source left at all, the next announcer is the seed', () => {
    const { s, ann } = setup({ backToSourceLimit: 0 });
    ann('seed');
    ann('c1');
    s.leave(T, 'seed');
    assert.equal(s.progress(T, 'c1', {}).backToSource, undefined, 'limit 0');
    assert.equal(ann('late').role, 'seed');
  });
});

describe('scheduler state: failed pieces', () => {
  it('a parent that served a corrupt piece is kept from that child for the block time', () => {
    const { s, ann, tick } = setup({ blockMs: 60_000 });
    ann('seed', { meta: meta(10) });
    s.progress(T, 'seed', { pieces: [0, 1, 2, 3] });
    ann('bad', { pieces: [0, 1, 2, 3, 4, 5] });
    const c = ann('c');
    assert.equal(c.parents[0]!.peerId, 'bad');
    const r = s.progress(T, 'c', { failed: [{ piece: 4, parent: 'bad', reason: 'digest' }] });
    assert.deepEqual(r.parents.map((p) => p.peerId), ['seed']);
    assert.deepEqual(s.view(T).peers.find((p) => p.peerId === 'c')!.blocked, ['bad']);
    // only for this child
    assert.equal(ann('other').parents[0]!.peerId, 'bad');
    tick(59_000);
    assert.ok(!s.progress(T, 'c', {}).parents.some((p) => p.peerId === 'bad'));
    tick(1_000);
    assert.equal(s.progress(T, 'c', {}).parents[0]!.peerId, 'bad');
    assert.equal(s.stats.failedPieces.digest, 1);
    checkLinks(s);
  });

  it('busy is load, not a fault: the parent is not blocked', () => {
    const { s, ann } = setup();
    ann('seed', { meta: meta(4) });
    ann('c');
    s.progress(T, 'c', { failed: [{ piece: 0, parent: 'seed', reason: 'busy' }] });
    assert.deepEqual(s.view(T).peers.find((p) => p.peerId === 'c')!.blocked, []);
    assert.equal(s.stats.failedPieces.busy, 1);
  });

  it('a parent two children found gone leaves the task', () => {
    const { s, ann, events } = setup();
    ann('seed', { meta: meta(4) });
    ann('ghost', { pieces: [0, 1] });
    ann('c1');
    ann('c2');
    s.progress(T, 'c1', { failed: [{ piece: -1, parent: 'ghost', reason: 'gone' }] });
    assert.ok(s.view(T).peers.some((p) => p.peerId === 'ghost'));
    s.progress(T, 'c2', { failed: [{ piece: 1, parent: 'ghost', reason: 'gone' }] });
    assert.ok(!s.view(T).peers.some((p) => p.peerId === 'ghost'));
    assert.ok(events.some((e) => e.startsWith('failed ghost')));
    checkLinks(s);
  });
});

describe('scheduler state: load', () => {
  it('a mesh, not a star: 1 seed and 16 children as pieces spread, no peer over 2K children', () => {
    const K = 4;
    const { s, ann } = setup({ parents: K });
    const total = 64;
    ann('seed');
    const kids = Array.from({ length: 16 }, (_, i) => `c${i}`);
    const held = new Map<string, Set<number>>(kids.map((k) => [k, new Set()]));
    const parents = new Map<string, string[]>();
    for (const k of kids) parents.set(k, ann(k, { zone: `z${Number(k.slice(1)) % 3}` }).parents.map((p) => p.peerId));
    let seedHas = 0;
    let maxSeen = 0;
    let maxSeed = 0;
    let uploaders = 0;
    for (let round = 0; round < 200 && kids.some((k) => held.get(k)!.size < total); round++) {
      // the seed reads 2 pieces a round from the upstream
      const fresh = [seedHas, seedHas + 1].filter((n) => n < total);
      seedHas += fresh.length;
      s.progress(T, 'seed', { meta: meta(total, seedHas), pieces: fresh, finished: seedHas >= total });
      for (const k of kids) {
        const mine = held.get(k)!;
        // one piece from each parent that has one this child lacks
        const got: number[] = [];
        for (const p of parents.get(k) ?? []) {
          const theirs = p === 'seed' ? new Set(Array.from({ length: seedHas }, (_, i) => i)) : held.get(p)!;
          const n = [...theirs].find((x) => !mine.has(x) && !got.includes(x));
          if (n !== undefined) got.push(n);
        }
        for (const n of got) mine.add(n);
        const r = s.progress(T, k, { pieces: got });
        parents.set(k, r.parents.map((p) => p.peerId));
      }
      const v = s.view(T);
      const most = Math.max(...v.peers.map((p) => p.children));
      const seed = v.peers.find((p) => p.peerId === 'seed')!.children;
      uploaders = Math.max(uploaders, v.peers.filter((p) => p.children > 0).length);
      if (round >= 2) maxSeen = Math.max(maxSeen, most);
      maxSeed = Math.max(maxSeed, seed);
      checkLinks(s);
    }
    assert.ok(kids.every((k) => held.get(k)!.size === total), 'everyone got every piece');
    assert.ok(maxSeen <= 2 * K, `a peer had ${maxSeen} children`);
    assert.ok(maxSeed <= 4, `the seed had ${maxSeed} children with 4 upload slots`);
    assert.ok(uploaders >= 12, `only ${uploaders} peers ever had children at once`);
    assert.ok(s.view(T).peers.every((p) => p.finished));
  });

  it('load counts over tasks: a host busy in one task is skipped in another', () => {
    const { s, ann } = setup({ parents: 1 });
    ann('a', { meta: meta(4), finished: true, uploadSlots: 1 });
    ann('b', { meta: meta(4), finished: true, uploadSlots: 1 });
    ann('a', { meta: meta(4), finished: true, uploadSlots: 1 }, T2);
    ann('b', { meta: meta(4), finished: true, uploadSlots: 1 }, T2);
    const first = ann('c1').parents.map((p) => p.peerId);
    assert.equal(first.length, 1);
    const other = ann('c2', {}, T2).parents.map((p) => p.peerId);
    assert.equal(other.length, 1);
    assert.notEqual(other[0], first[0]);
    checkLinks(s, [T, T2]);
  });
});

describe('scheduler state: housekeeping', () => {
  it('drops unfinished peers that stopped reporting, then the empty task and idle hosts; finished peers stay', () => {
    const { s, ann, tick, events } = setup({ peerIdleMs: 60_000 });
    ann('seed', { meta: meta(2), finished: true });
    ann('quiet');
    ann('talks');
    tick(30_000);
    s.progress(T, 'talks', {});
    tick(30_000);
    s.sweep();
    assert.deepEqual(s.view(T).peers.map((p) => p.peerId), ['seed', 'talks']);
    assert.ok(events.includes('failed quiet: no progress report'));
    assert.ok(!s.hosts.has('quiet') || s.hosts.get('quiet')!.tasks.size === 0);
    s.leave(T, 'seed');
    s.leave(T, 'talks');
    assert.equal(s.taskCount, 0);
    tick(60_000);
    s.sweep();
    assert.equal(s.hosts.size, 0);
  });

  it('lists live hosts by zone, registered or announced, without unreachable ones', () => {
    const { s, ann, tick } = setup({ peerIdleMs: 60_000 });
    s.registerPeer({ peerId: 'r1', addr: 'http://r1:1', zone: 'z1', uploadSlots: 2 });
    s.registerPeer({ peerId: 'r2', addr: 'http://r2:1', zone: 'z2', uploadSlots: 2 });
    ann('a1', { zone: 'z1' });
    assert.deepEqual(s.liveHosts('z1').map((h) => h.peerId), ['a1', 'r1']);
    assert.equal(s.liveHosts().length, 3);
    s.markUnreachable('r1');
    assert.deepEqual(s.liveHosts('z1').map((h) => h.peerId), ['a1']);
    tick(1);
    s.registerPeer({ peerId: 'r1', addr: 'http://r1:1', zone: 'z1', uploadSlots: 2 });
    assert.deepEqual(s.liveHosts('z1').map((h) => h.peerId), ['a1', 'r1']);
    tick(60_001);
    assert.deepEqual(s.liveHosts(), []);
  });
});
