import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SampanError } from './errors.js';
import { DockerIgnore, matchGlob } from './dockerignore.js';

function check(ig: DockerIgnore, expect: Record<string, boolean>): void {
  for (const [p, ignored] of Object.entries(expect)) assert.equal(ig.ignores(p), ignored, `${p} should ${ignored ? '' : 'not '}be ignored`);
}

function rejects(fn: () => unknown, msg: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof SampanError && err.code === 'INVALID_ARGUMENT' && msg.test(err.message));
}

test('the usual file: *.md with a README exception, **/*.tmp, dir/ with an exception inside', () => {
  const ig = DockerIgnore.parse('# docs\n*.md\n!README.md\n\n**/*.tmp\ndir/\n!dir/keep\n');
  check(ig, {
    'notes.md': true,
    'README.md': false,
    // * does not cross directories
    'docs/notes.md': false,
    'a.tmp': true,
    'x/y/z.tmp': true,
    'x/y/z.tmpl': false,
    dir: true,
    'dir/a': true,
    'dir/sub/b': true,
    'dir/keep': false,
    'dir/keep/inside': false,
    'dirt/a': false,
    'main.go': false,
  });
});

test('a pattern matching a directory excludes everything under it', () => {
  const ig = new DockerIgnore(['node_modules', 'build/out', '*/cache']);
  check(ig, {
    node_modules: true,
    'node_modules/x/index.js': true,
    // a pattern without a slash only matches at the top
    'pkg/node_modules/x': false,
    'build/out/a/b': true,
    'build/outside': false,
    'a/cache/x': true,
    'a/b/cache/x': false,
  });
});

test('cleaning: leading / and ./, trailing /, doubled slashes, .. ; comments only at column 0; blanks and CRLF', () => {
  const ig = DockerIgnore.parse('\ufeff/abs\n./rel\ntrail/\nx//y\na/../b\n  # not a comment\n\t\n  spaced  \r\n!  /abs/keep\n');
  check(ig, {
    abs: true,
    'abs/x': true,
    'abs/keep': false,
    rel: true,
    'trail/f': true,
    'x/y': true,
    b: true,
    a: false,
    '  # not a comment': false,
    '# not a comment': true,
    spaced: true,
  });
  // paths are cleaned too
  assert.equal(ig.ignores('./abs/z'), true);
  assert.equal(ig.ignores('abs/'), true);
  assert.equal(ig.ignores(''), false);
  assert.equal(ig.ignores('.'), false);
});

test('the last matching line wins', () => {
  check(new DockerIgnore(['*.log', '!important.log', 'important.log']), { 'important.log': true, 'x.log': true });
  check(new DockerIgnore(['*', '!src', 'src/*.o']), { 'src/main.c': false, 'src/main.o': true, src: false, other: true });
  // an exception cannot re-include below a directory a later line excludes again
  check(new DockerIgnore(['a', '!a/b', 'a']), { 'a/b': true });
});

test('wildcards: * and ? stay inside one name; classes with ranges and ^ negation; escapes', () => {
  check(new DockerIgnore(['a?c', 'f*o', 'x/*/z']), { abc: true, ac: false, 'a/c': false, fo: true, foo: true, 'f/o': false, 'x/y/z': true, 'x/y/w/z': false });
  check(new DockerIgnore(['file[0-9].txt']), { 'file1.txt': true, 'filea.txt': false });
  check(new DockerIgnore(['v[^0-9]']), { va: true, v1: false });
  // Docker reads `[!...]` as a class holding '!' (no negation)
  check(new DockerIgnore(['w[!a]']), { 'w!': true, wa: true, wb: false });
  check(new DockerIgnore(['[a-cx]z']), { az: true, bz: true, xz: true, dz: false });
  check(new DockerIgnore(['lit\\*', 'q\\?']), { 'lit*': true, litx: false, 'q?': true, qa: false });
  // regexp characters are literal
  check(new DockerIgnore(['a.b', 'c+(d)|{e}$']), { 'a.b': true, axb: false, 'c+(d)|{e}$': true });
});

test('**: any number of directories, at the start, middle or end', () => {
  check(new DockerIgnore(['**/foo']), { foo: true, 'a/foo': true, 'a/b/foo': true, 'a/foo/x': true, 'a/xfoo': false });
  check(new DockerIgnore(['a/**/b']), { 'a/b': true, 'a/x/b': true, 'a/x/y/b': true, 'a/x/c': false });
  check(new DockerIgnore(['foo/**']), { foo: false, 'foo/x': true, 'foo/x/y': true });
  check(new DockerIgnore(['**']), { anything: true, 'a/b/c': true });
  check(new DockerIgnore(['**/*.go']), { 'main.go': true, 'cmd/x/main.go': true, 'main.gox': false });
  check(new DockerIgnore(['**/cache/**']), { cache: false, 'cache/x': true, 'a/cache/x/y': true });
});

test('matching is case-sensitive', () => {
  check(new DockerIgnore(['*.MD']), { 'A.MD': true, 'a.md': false });
});

test('malformed patterns are 400s, as Docker rejects them', () => {
  rejects(() => new DockerIgnore(['[abc']), /syntax error/);
  rejects(() => new DockerIgnore(['[]a]']), /syntax error/);
  rejects(() => new DockerIgnore(['[a-]']), /syntax error/);
  rejects(() => new DockerIgnore(['[-a]']), /syntax error/);
  rejects(() => new DockerIgnore(['trailing\\']), /syntax error/);
  rejects(() => DockerIgnore.parse('!\n'), /illegal exclusion pattern: "!"/);
  // a reversed range is valid but matches nothing
  check(new DockerIgnore(['[z-a]x']), { ax: false, zx: false });
});

test('mustWalk: an ignored directory is walked only when an exception may re-include something below it', () => {
  const ig = DockerIgnore.parse('dir/\n!dir/keep\nother\nnode_modules\n!node_modules/*/package.json\n');
  assert.equal(ig.mustWalk('dir'), true);
  assert.equal(ig.mustWalk('other'), false);
  assert.equal(ig.mustWalk('node_modules'), true);
  assert.equal(ig.mustWalk('node_modules/x'), true);
  assert.equal(ig.mustWalk('node_modules/x/lib'), false);
  // not ignored: the walker goes in anyway, nothing to decide
  assert.equal(ig.mustWalk('src'), false);
  assert.equal(ig.ignores('node_modules/x/package.json'), false);
  assert.equal(ig.ignores('node_modules/x/index.js'), true);
  // an exception starting with ** may match below any ignored directory
  const deep = DockerIgnore.parse('logs\nother\n!**/important.log\n');
  assert.equal(deep.mustWalk('logs'), true);
  assert.equal(deep.mustWalk('other'), true);
  assert.equal(deep.ignores('logs/a/important.log'), false);
  assert.equal(deep.ignores('logs/a/other.log'), true);
  const plain = new DockerIgnore(['a', 'b/c', '!b/d']);
  assert.equal(plain.mustWalk('a'), false);
  assert.equal(plain.mustWalk('b/c'), false);
  // an exception naming the directory itself: Docker's prefix test walks it (what is below stays ignored)
  const again = new DockerIgnore(['x', '!x', 'x']);
  assert.equal(again.mustWalk('x'), true);
  assert.equal(again.ignores('x/y'), true);
  // an exception for a parent does not make an ignored child walkable
  assert.equal(new DockerIgnore(['*', '!a', 'a/b']).mustWalk('a/b'), false);
  assert.equal(new DockerIgnore(['x', '!x/deep/file']).mustWalk('x/deep'), true);
});

test('matchGlob: Go filepath.Match on one name (COPY sources)', () => {
  assert.equal(matchGlob('*.txt', 'a.txt'), true);
  assert.equal(matchGlob('*.txt', 'a.txt.bak'), false);
  assert.equal(matchGlob('?.txt', 'ab.txt'), false);
  assert.equal(matchGlob('[ab]*', 'bcd'), true);
  assert.equal(matchGlob('[^ab]*', 'bcd'), false);
  assert.equal(matchGlob('\\[x]', '[x]'), true);
  // ** is two stars here: no directories
  assert.equal(matchGlob('**', 'a/b'), false);
  assert.equal(matchGlob('**', 'ab'), true);
  assert.throws(() => matchGlob('[', 'x'), SampanError);
});
