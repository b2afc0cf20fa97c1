import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chooseParents, type Candidate, type Child } from './parents.js';
import { PieceSet } from './pieceset.js';

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

function cand(peerId: string, o: Partial<Omit<Candidate, 'pieces'>> & { pieces?: number[] } = {}): Candidate {
  return { peerId, finished: false, uploadSlots: 4, children: 0, ...o, pieces: PieceSet.of(o.pieces ?? []) };
}

function child(peerId: string, o: Partial<Omit<Child, 'pieces'>> & { pieces?: number[] } = {}): Child {
  return { peerId, ...o, pieces: PieceSet.of(o.pieces ?? []) };
}

const ids = (cs: Candidate[]) => cs.map((c) => c.peerId);

describe('PieceSet', () => {
  it('adds, counts what another set lacks, lists and prints ranges', () => {
    const a = PieceSet.of([0, 1, 2, 5, 31, 32, 33, 100]);
    assert.equal(a.size, 8);
    assert.equal(a.add(5), false);
    assert.equal(a.has(100), true);
    assert.equal(a.has(99), false);
    assert.equal(a.has(10_000), false);
    assert.deepEqual(a.toArray(), [0, 1, 2, 5, 31, 32, 33, 100]);
    assert.equal(a.ranges(), '0-2,5,31-33,100');
    assert.equal(a.countMissingFrom(PieceSet.of([0, 1, 32])), 5);
    assert.equal(a.countMissingFrom(PieceSet.full(200)), 0);
    assert.equal(PieceSet.full(70).countMissingFrom(new PieceSet()), 70);
  });
});

describe('chooseParents', () => {
  it('never the child itself, nor a parent blocked for it', () => {
    const got = chooseParents(child('c'), [cand('c', { pieces: [1] }), cand('a', { pieces: [1] }), cand('b', { pieces: [1, 2] })], { max: 4, blocked: (id) => id === 'b' });
    assert.deepEqual(ids(got), ['a']);
  });

  it('finished peers first, then more pieces the child lacks', () => {
    const got = chooseParents(
      child('c', { pieces: [0, 1, 2] }),
      [cand('few', { pieces: [0, 1, 2, 3] }), cand('many', { pieces: range(0, 8) }), cand('done', { finished: true, pieces: range(0, 10) }), cand('mid', { pieces: range(2, 8) })],
      { max: 4, total: 10 },
    );
    // many: 5 the child lacks; mid: 5 too but the same count, then free slots equal, zone none, children equal: tie-break
    assert.equal(got[0]!.peerId, 'done');
    assert.deepEqual(new Set(ids(got.slice(1, 3))), new Set(['many', 'mid']));
    assert.equal(got[3]!.peerId, 'few');
  });

  it('ranks by pieces the child lacks, not pieces held', () => {
    const got = chooseParents(child('c', { pieces: range(0, 6) }), [cand('big', { pieces: range(0, 7) }), cand('other', { pieces: [7, 8, 9] })], { max: 1 });
    assert.deepEqual(ids(got), ['other']);
  });

  it('then free upload slots, then the same zone, then fewer children', () => {
    const p = [0, 1];
    assert.deepEqual(ids(chooseParents(child('c'), [cand('a', { pieces: p, uploadSlots: 4, children: 3 }), cand('b', { pieces: p, uploadSlots: 8, children: 3 })], { max: 2 })), ['b', 'a']);
    assert.deepEqual(ids(chooseParents(child('c', { zone: 'z1' }), [cand('far', { pieces: p, zone: 'z2' }), cand('near', { pieces: p, zone: 'z1' })], { max: 2 })), ['near', 'far']);
    // equal free slots (more slots, more children) and zone: fewer children wins
    assert.deepEqual(ids(chooseParents(child('c'), [cand('busy', { pieces: p, uploadSlots: 6, children: 4 }), cand('calm', { pieces: p, uploadSlots: 3, children: 1 })], { max: 2 })), ['calm', 'busy']);
  });

  it('returns at most K parents', () => {
    const cs = range(0, 10).map((i) => cand(`p${i}`, { pieces: [i] }));
    assert.equal(chooseParents(child('c'), cs, { max: 4 }).length, 4);
    assert.equal(chooseParents(child('c'), cs, { max: 0 }).length, 0);
  });

  it('skips a peer whose children fill its upload slots, unless nothing else is left', () => {
    const full = cand('seed', { finished: true, pieces: range(0, 10), uploadSlots: 2, children: 2 });
    const open = cand('open', { pieces: [0] });
    assert.deepEqual(ids(chooseParents(child('c'), [full, open], { max: 4, total: 10 })), ['open']);
    assert.deepEqual(ids(chooseParents(child('c'), [full], { max: 4, total: 10 })), ['seed']);
    // all full: the least overloaded first
    const worse = cand('worse', { pieces: range(0, 10), uploadSlots: 2, children: 9 });
    const over = cand('over', { pieces: [0], uploadSlots: 2, children: 3 });
    assert.deepEqual(ids(chooseParents(child('c'), [worse, over], { max: 1 })), ['over']);
    // a peer that does not upload at all is a last resort
    assert.deepEqual(ids(chooseParents(child('c'), [cand('mute', { pieces: [0], uploadSlots: 0 }), cand('ok', { uploadSlots: 1 })], { max: 1 })), ['ok']);
  });

  it('downloading peers are candidates even with nothing new yet (a mesh), finished ones without anything new are not', () => {
    const got = chooseParents(child('c', { pieces: [0, 1] }), [cand('empty'), cand('behind', { pieces: [0] })], { max: 4 });
    assert.deepEqual(new Set(ids(got)), new Set(['empty', 'behind']));
  });

  it('a seed is only given peers holding pieces it lacks; a finished child gets none', () => {
    const cs = [cand('empty'), cand('has', { pieces: [5] }), cand('same', { pieces: [0] })];
    assert.deepEqual(ids(chooseParents(child('s', { seed: true, pieces: [0] }), cs, { max: 4 })), ['has']);
    assert.deepEqual(chooseParents(child('c', { finished: true }), cs, { max: 4 }), []);
  });

  it('a finished peer counts as holding every piece even before its pieces are listed', () => {
    const got = chooseParents(child('c', { pieces: [0] }), [cand('listed', { pieces: range(0, 50) }), cand('done', { finished: true })], { max: 2, total: 100 });
    assert.deepEqual(ids(got), ['done', 'listed']);
  });

  it('equal candidates are spread over children: they do not all pick the same ones', () => {
    const cs = range(0, 12).map((i) => cand(`p${i}`, { pieces: [0] }));
    const firsts = new Set(range(0, 40).map((i) => chooseParents(child(`c${i}`), cs, { max: 2 })[0]!.peerId));
    assert.ok(firsts.size >= 6, `first choices: ${[...firsts].join(' ')}`);
    // and the same child gets the same answer (stable across reports)
    assert.deepEqual(ids(chooseParents(child('c7'), cs, { max: 3 })), ids(chooseParents(child('c7'), cs, { max: 3 })));
  });
});
