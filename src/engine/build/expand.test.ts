import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SampanError } from '../../lib/errors.js';
import { EXPANDS, envFromList, expandWord, expandWords, lex } from './expand.js';

const vars: Record<string, string> = { A: 'a', EMPTY: '', SP: 'x y', HOME: '/root', FILE: 'archive.tar.gz', PATHV: '/usr/local/bin:/usr/bin' };
const env = (n: string) => (Object.hasOwn(vars, n) ? vars[n] : undefined);
const w = (s: string, escape = '\\') => expandWord(s, env, escape);

function rejects(fn: () => unknown, msg: RegExp | string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SampanError, String(err));
    assert.equal(err.code, 'INVALID_ARGUMENT');
    if (typeof msg === 'string') assert.equal(err.message, msg);
    else assert.match(err.message, msg);
    return true;
  });
}

test('$VAR and ${VAR}; unset variables expand to nothing; a lone $ stays', () => {
  assert.equal(w('$A'), 'a');
  assert.equal(w('${A}b'), 'ab');
  assert.equal(w('$Ab'), '');
  assert.equal(w('x${NOPE}y$NOPE'), 'xy');
  assert.equal(w('cost: $'), 'cost: $');
  assert.equal(w('$/x'), '$/x');
  assert.equal(w('a$-b'), 'ab');
  // special parameters are looked up like names, so they vanish
  assert.equal(w('pid $$ ok'), 'pid  ok');
  assert.equal(w('$1x'), 'x');
  assert.equal(w('${HOME}/.cache'), '/root/.cache');
  assert.equal(w('é$A'), 'éa');
});

test('${VAR:-default} and ${VAR-default}: colon forms treat empty as unset', () => {
  assert.equal(w('${A:-d}'), 'a');
  assert.equal(w('${EMPTY:-d}'), 'd');
  assert.equal(w('${NOPE:-d}'), 'd');
  assert.equal(w('${A-d}'), 'a');
  assert.equal(w('${EMPTY-d}'), '');
  assert.equal(w('${NOPE-d}'), 'd');
  assert.equal(w('${NOPE:-}'), '');
});

test('${VAR:+alt} and ${VAR+alt}', () => {
  assert.equal(w('${A:+alt}'), 'alt');
  assert.equal(w('${EMPTY:+alt}'), '');
  assert.equal(w('${NOPE:+alt}'), '');
  assert.equal(w('${EMPTY+alt}'), 'alt');
  assert.equal(w('${NOPE+alt}'), '');
});

test('${VAR:?msg} and ${VAR?msg}', () => {
  assert.equal(w('${A:?must be set}'), 'a');
  assert.equal(w('${EMPTY?set but empty is fine}'), '');
  rejects(() => w('${NOPE:?must be set}'), 'failed to process "${NOPE:?must be set}": NOPE: must be set');
  rejects(() => w('${NOPE:?}'), /NOPE: is not allowed to be unset$/);
  rejects(() => w('${EMPTY:?}'), /EMPTY: is not allowed to be empty$/);
  rejects(() => w('${NOPE?}'), /NOPE: is not allowed to be unset$/);
});

test('nested words in modifiers: ${X:-${Y}}, quotes and escapes inside', () => {
  assert.equal(w('${NOPE:-${A}}'), 'a');
  assert.equal(w('${NOPE:-${NOPE2:-${HOME}}/x}'), '/root/x');
  assert.equal(w('${NOPE:-$A-$A}'), 'a-a');
  assert.equal(w('${NOPE:-"a b"}'), 'a b');
  assert.equal(w("${NOPE:-'$A'}"), '$A');
  assert.equal(w('${NOPE:-a\\}b}'), 'a}b');
  assert.equal(w('${A:+${SP}}'), 'x y');
});

test('pattern removal and replacement: # ## % %% / //', () => {
  assert.equal(w('${FILE#*.}'), 'tar.gz');
  assert.equal(w('${FILE##*.}'), 'gz');
  assert.equal(w('${FILE%.*}'), 'archive.tar');
  assert.equal(w('${FILE%%.*}'), 'archive');
  assert.equal(w('${FILE#nomatch}'), 'archive.tar.gz');
  assert.equal(w('${PATHV/bin/sbin}'), '/usr/local/sbin:/usr/bin');
  assert.equal(w('${PATHV//bin/sbin}'), '/usr/local/sbin:/usr/sbin');
  assert.equal(w('${PATHV//:/ }'), '/usr/local/bin /usr/bin');
  assert.equal(w('${FILE/a?c/X}'), 'Xhive.tar.gz');
  assert.equal(w('${FILE#\\*}'), 'archive.tar.gz');
  assert.equal(w('${NOPE#x}'), '');
});

test('quote removal: single quotes literal, double quotes expand, escapes', () => {
  assert.equal(w("'$A \"x\"'"), '$A "x"');
  assert.equal(w('"$A \'x\'"'), "a 'x'");
  assert.equal(w('"\\$A"'), '$A');
  assert.equal(w('"a\\"b"'), 'a"b');
  assert.equal(w('"a\\\\b"'), 'a\\b');
  // other escapes stay literal inside double quotes
  assert.equal(w('"a\\nb"'), 'a\\nb');
  assert.equal(w("'a\\'"), 'a\\');
  // unquoted: the escape takes the next character literally; a trailing one is dropped
  assert.equal(w('\\$A'), '$A');
  assert.equal(w('a\\ b'), 'a b');
  assert.equal(w('\\"x\\"'), '"x"');
  assert.equal(w('end\\'), 'end');
  assert.equal(w('a"b"\'c\'d'), 'abcd');
  assert.equal(w('  spaces  kept  '), '  spaces  kept  ');
});

test('backtick escape: backslashes are ordinary, ` escapes', () => {
  assert.equal(w('c:\\dir\\$A', '`'), 'c:\\dir\\a');
  assert.equal(w('c:\\dir\\`$A', '`'), 'c:\\dir\\$A');
  assert.equal(w('"say `"hi`""', '`'), 'say "hi"');
  assert.equal(w('"a\\"', '`'), 'a\\');
  assert.deepEqual(expandWords('a` b c', env, '`'), ['a b', 'c']);
});

test('expandWords: splits after expansion; quoted blanks and escaped blanks do not split; empty quotes vanish', () => {
  const ws = (s: string) => expandWords(s, env);
  assert.deepEqual(ws('  80/tcp   443  '), ['80/tcp', '443']);
  assert.deepEqual(ws('a "b c" \'d  e\' f\\ g'), ['a', 'b c', 'd  e', 'f g']);
  assert.deepEqual(ws('$SP z'), ['x', 'y', 'z']);
  assert.deepEqual(ws('"$SP" z'), ['x y', 'z']);
  assert.deepEqual(ws('pre$SP'), ['prex', 'y']);
  assert.deepEqual(ws('"" a \'\''), ['a']);
  assert.deepEqual(ws('$NOPE'), []);
  assert.deepEqual(ws(''), []);
  // as in Docker (not a shell), a default's expansion splits too
  assert.deepEqual(ws('${NOPE:-"a b"}'), ['a', 'b']);
});

test('syntax errors are 400s naming the input', () => {
  rejects(() => w('"abc'), 'failed to process "\\"abc": unexpected end of statement while looking for matching double-quote');
  rejects(() => w("it's"), /unexpected end of statement while looking for matching single-quote$/);
  rejects(() => w('${}'), 'failed to process "${}": syntax error: bad substitution');
  rejects(() => w('${:-x}'), /syntax error: bad substitution$/);
  rejects(() => w('${{A}}'), /syntax error: bad substitution$/);
  rejects(() => w('${'), /syntax error: missing '}'$/);
  rejects(() => w('${A'), /syntax error: missing '}'$/);
  rejects(() => w('${A:-x'), /syntax error: missing '}'$/);
  rejects(() => w('${A/x'), /syntax error: missing '\/' in \$\{\}$/);
  rejects(() => w('${A!}'), /unsupported modifier \(!\) in substitution$/);
  rejects(() => w('${A:#x}'), /unsupported modifier \(:#\) in substitution$/);
  rejects(() => w('${A:-"x}'), /unexpected end of statement while looking for matching double-quote|missing '}'/);
});

test('lex options used for heredoc detection: raw quotes and escapes, unset left alone', () => {
  const none = () => undefined;
  assert.deepEqual(lex('RUN <<"EOF" a\\ b', none, { rawQuotes: true, rawEscapes: true }).words, ['RUN', '<<"EOF"', 'a\\ b']);
  assert.equal(lex('$X ${Y} ${Z:-d}', none, { skipUnsetEnv: true }).word, '$X ${Y} ${Z:-d}');
  rejects(() => lex('x', none, { escape: '/' }), /invalid escape token/);
});

test('EXPANDS lists the instructions the builder substitutes variables in', () => {
  for (const k of ['ADD', 'ARG', 'COPY', 'ENV', 'EXPOSE', 'FROM', 'LABEL', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR']) assert.ok(EXPANDS.has(k), k);
  for (const k of ['RUN', 'CMD', 'ENTRYPOINT', 'SHELL', 'HEALTHCHECK', 'ONBUILD', 'MAINTAINER']) assert.ok(!EXPANDS.has(k), k);
});

test('envFromList: KEY=value entries, later ones win, a bare key is empty', () => {
  const e = envFromList(['A=1', 'B=x=y', 'A=2', 'C']);
  assert.equal(e('A'), '2');
  assert.equal(e('B'), 'x=y');
  assert.equal(e('C'), '');
  assert.equal(e('D'), undefined);
  assert.equal(expandWord('$A-$B', e), '2-x=y');
});
