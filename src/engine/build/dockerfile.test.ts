import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SampanError } from '../../lib/errors.js';
import { keyValues, parseDockerfile, parseInstruction, parseWords, type Instruction } from './dockerfile.js';
import { expandWord } from './expand.js';

/** Assert a 400 whose message matches. */
function rejects(fn: () => unknown, msg: RegExp | string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SampanError, String(err));
    assert.equal(err.code, 'INVALID_ARGUMENT');
    if (typeof msg === 'string') assert.equal(err.message, msg);
    else assert.match(err.message, msg);
    return true;
  });
}

/** All instructions of a Dockerfile, meta ARGs first. */
function all(text: string): Instruction[] {
  const df = parseDockerfile(text);
  return [...df.metaArgs, ...df.stages.flatMap((s) => s.instructions)];
}

function one(text: string): Instruction {
  return parseInstruction(text);
}

test('multi-stage: meta ARGs, stage names (any case of AS, lower-cased), bases as written, lines', () => {
  const df = parseDockerfile('ARG V=1\nARG BASE\nFROM busybox:$V\nRUN echo one\n\nFROM ${BASE:-alpine} As Builder\nCOPY --from=0 /a /b\n');
  assert.equal(df.escape, '\\');
  assert.deepEqual(df.metaArgs.map((a) => [a.keyword, a.line, a.args]), [['ARG', 1, ['V=1']], ['ARG', 2, ['BASE']]]);
  assert.equal(df.stages.length, 2);
  const [s0, s1] = df.stages;
  assert.equal(s0!.index, 0);
  assert.equal(s0!.name, undefined);
  assert.equal(s0!.base, 'busybox:$V');
  assert.equal(s0!.line, 3);
  assert.deepEqual(s0!.instructions.map((i) => [i.keyword, i.line]), [['FROM', 3], ['RUN', 4]]);
  assert.equal(s1!.index, 1);
  assert.equal(s1!.name, 'builder');
  assert.equal(s1!.base, '${BASE:-alpine}');
  assert.equal(s1!.line, 6);
  assert.deepEqual(s1!.instructions[1]!.flags, { from: '0' });
  assert.deepEqual(s1!.instructions[1]!.args, ['/a', '/b']);
});

test('FROM --platform goes on the stage; ARG after FROM belongs to the stage', () => {
  const df = parseDockerfile('FROM --platform=$BUILDPLATFORM golang AS build\nARG X\n');
  assert.equal(df.stages[0]!.platform, '$BUILDPLATFORM');
  assert.equal(df.stages[0]!.name, 'build');
  assert.deepEqual(df.metaArgs, []);
  assert.deepEqual(df.stages[0]!.instructions.map((i) => i.keyword), ['FROM', 'ARG']);
});

test('keywords are case-insensitive; leading whitespace, comments and blank lines are skipped', () => {
  const ins = all('  # a comment\n\nfrom scratch\n\t run echo hi\n   # indented comment\nCmd ["sh"]\n');
  assert.deepEqual(ins.map((i) => [i.keyword, i.line]), [['FROM', 3], ['RUN', 4], ['CMD', 6]]);
  assert.deepEqual(ins[1]!.args, ['echo hi']);
  assert.equal(ins[1]!.original, 'run echo hi');
});

test('line continuations: joined as written, comments and blank lines inside are skipped, endLine counts them', () => {
  const ins = all('FROM scratch\nRUN echo a \\\n  # a comment inside\n\n    && echo b \\\n  && echo c\nCMD x\n');
  const run = ins[1]!;
  assert.equal(run.line, 2);
  assert.equal(run.endLine, 6);
  assert.deepEqual(run.args, ['echo a     && echo b   && echo c']);
  assert.equal(run.raw, 'echo a     && echo b   && echo c');
  assert.equal(run.original, 'RUN echo a     && echo b   && echo c');
  assert.equal(ins[2]!.line, 7);
});

test('line continuations: trailing blanks after the escape allowed; a doubled escape is no continuation; EOF inside is fine', () => {
  const ins = all('FROM scratch\nRUN echo a \\  \t\n b\nRUN echo \\\\\nRUN echo last \\');
  assert.deepEqual(ins[1]!.args, ['echo a  b']);
  assert.deepEqual(ins[2]!.args, ['echo \\\\']);
  assert.equal(ins[2]!.line, 4);
  assert.deepEqual(ins[3]!.args, ['echo last']);
});

test('CRLF line endings and a byte-order mark', () => {
  const ins = all('\ufeffFROM scratch\r\nRUN a \\\r\n  b\r\nENV K=V\r\n');
  assert.deepEqual(ins.map((i) => i.keyword), ['FROM', 'RUN', 'ENV']);
  assert.deepEqual(ins[1]!.args, ['a   b']);
  assert.deepEqual(keyValues(ins[2]!), [{ key: 'K', value: 'V' }]);
});

test('escape directive: backtick escape, Windows paths keep their backslashes, backtick continues lines', () => {
  const df = parseDockerfile(
    '# escape=`\n\nFROM mcr.microsoft.com/windows/servercore\nCOPY testfile.txt c:\\\nRUN dir c:\\ `\n    && echo done\nWORKDIR c:\\Program Files\\app\nRUN ["c:\\\\windows\\\\system32\\\\cmd.exe", "/c", "dir"]\n',
  );
  assert.equal(df.escape, '`');
  const [, copy, run, wd, exec] = df.stages[0]!.instructions;
  assert.deepEqual(copy!.args, ['testfile.txt', 'c:\\']);
  assert.deepEqual(run!.args, ['dir c:\\     && echo done']);
  assert.equal(run!.endLine, 6);
  assert.deepEqual(wd!.args, ['c:\\Program Files\\app']);
  assert.equal(exec!.json, true);
  assert.deepEqual(exec!.args, ['c:\\windows\\system32\\cmd.exe', '/c', 'dir']);
});

test('escape directive: backslash is then an ordinary character in words', () => {
  const df = parseDockerfile('#escape=`\nFROM x\nENV P=c:\\dir\\ Q=`"quoted`"\n');
  assert.deepEqual(keyValues(df.stages[0]!.instructions[1]!), [
    { key: 'P', value: 'c:\\dir\\' },
    { key: 'Q', value: '`"quoted`"' },
  ]);
});

test('parser directives: only at the top, case-insensitive, syntax ignored, end at the first other line', () => {
  assert.equal(parseDockerfile('# syntax=docker/dockerfile:1\n# ESCAPE = `\nFROM x\n').escape, '`');
  // after a blank line, a comment or an instruction, it is only a comment
  assert.equal(parseDockerfile('\n# escape=`\nFROM x\n').escape, '\\');
  assert.equal(parseDockerfile('# hello\n# escape=`\nFROM x\n').escape, '\\');
  assert.equal(parseDockerfile('FROM x\n# escape=`\n').escape, '\\');
  // an unknown directive ends them too
  assert.equal(parseDockerfile('# foo=bar\n# escape=`\nFROM x\n').escape, '\\');
  rejects(() => parseDockerfile('# escape=`\n# escape=\\\nFROM x\n'), 'Dockerfile parse error on line 2: only one escape parser directive can be used');
  rejects(() => parseDockerfile('# escape=x\nFROM x\n'), /^Dockerfile parse error on line 1: invalid escape token x does not match ` or \\$/);
});

test('heredoc: RUN <<EOF, body verbatim (comments, escapes), lines counted', () => {
  const ins = all('FROM x\nRUN <<EOF\n# not a comment\necho "$HOME" \\\nEOF\nRUN after\n');
  const run = ins[1]!;
  assert.deepEqual(run.args, ['<<EOF']);
  assert.deepEqual(run.heredocs, [{ name: 'EOF', content: '# not a comment\necho "$HOME" \\\n', expand: true, chomp: false }]);
  assert.equal(run.line, 2);
  assert.equal(run.endLine, 5);
  assert.equal(ins[2]!.line, 6);
});

test('heredoc: <<- strips leading tabs from body and terminator; quoted delimiters disable expansion', () => {
  const run = all('FROM x\nRUN <<-"EOT"\n\tindented $X\n\t\ttwice\n\tEOT\n')[1]!;
  assert.deepEqual(run.heredocs, [{ name: 'EOT', content: 'indented $X\ntwice\n', expand: false, chomp: true }]);
  assert.equal(all("FROM x\nRUN <<'E'\nx\nE\n")[1]!.heredocs[0]!.expand, false);
  // quoting part of the word counts too, as in a shell
  assert.equal(all('FROM x\nRUN <<E"O"F\nx\nEOF\n')[1]!.heredocs[0]!.name, 'EOF');
  assert.equal(all('FROM x\nRUN <<E"O"F\nx\nEOF\n')[1]!.heredocs[0]!.expand, false);
  // without <<- a tab-indented terminator does not end the body
  const plain = all('FROM x\nRUN <<EOF\n\tEOF\nEOF\n')[1]!;
  assert.equal(plain.heredocs[0]!.content, '\tEOF\n');
});

test('heredoc: several in one line, read in order; with a command and a file descriptor', () => {
  const run = all('FROM x\nRUN <<A cat - /dev/fd/3 3<<B > /out\nfirst\nA\nsecond\nB\nCMD x\n')[1]!;
  assert.deepEqual(run.args, ['<<A cat - /dev/fd/3 3<<B > /out']);
  assert.deepEqual(
    run.heredocs.map((h) => [h.name, h.content]),
    [['A', 'first\n'], ['B', 'second\n']],
  );
  assert.equal(run.endLine, 6);
});

test('heredoc: COPY and ADD sources; JSON form, other instructions and <<< are not heredocs', () => {
  const copy = all('FROM x\nCOPY --chmod=755 <<EOF /usr/local/bin/hello\n#!/bin/sh\necho hi\nEOF\n')[1]!;
  assert.deepEqual(copy.args, ['<<EOF', '/usr/local/bin/hello']);
  assert.deepEqual(copy.flags, { chmod: '755' });
  assert.equal(copy.heredocs[0]!.content, '#!/bin/sh\necho hi\n');
  const add = all('FROM x\nADD <<one <<two /dir/\n1\none\n2\ntwo\n')[1]!;
  assert.deepEqual(add.heredocs.map((h) => h.name), ['one', 'two']);
  assert.equal(all('FROM x\nRUN ["cat", "<<EOF"]\n')[1]!.heredocs.length, 0);
  assert.equal(all('FROM x\nLABEL a=<<EOF\n')[1]!.heredocs.length, 0);
  assert.equal(all('FROM x\nRUN cat <<<EOF\n')[1]!.heredocs.length, 0);
  // quoted or glued to a word, `<<` is no heredoc
  assert.equal(all('FROM x\nRUN echo "<<EOF"\n')[1]!.heredocs.length, 0);
  assert.equal(all('FROM x\nRUN cat<<EOF\n')[1]!.heredocs.length, 0);
});

test('heredoc: errors', () => {
  rejects(() => parseDockerfile('FROM x\nRUN <<EOF\necho\n'), 'Dockerfile parse error on line 2: unterminated heredoc');
  rejects(() => parseDockerfile('FROM x\nCOPY a <<EOF\nx\nEOF\n'), 'Dockerfile parse error on line 2: COPY cannot accept a heredoc as a destination');
});

test('ONBUILD keeps its trigger parsed in `onbuild` and its text in args; heredocs too', () => {
  const ins = all('FROM x\nONBUILD COPY --chown=1:1 . /app\nONBUILD RUN <<EOF\nmake\nEOF\n');
  const ob = ins[1]!;
  assert.deepEqual(ob.args, ['COPY --chown=1:1 . /app']);
  assert.equal(ob.raw, 'COPY --chown=1:1 . /app');
  assert.equal(ob.onbuild!.keyword, 'COPY');
  assert.deepEqual(ob.onbuild!.flags, { chown: '1:1' });
  assert.deepEqual(ob.onbuild!.args, ['.', '/app']);
  assert.equal(ob.onbuild!.line, 2);
  const hd = ins[2]!;
  assert.deepEqual(hd.heredocs.map((h) => h.content), ['make\n']);
  assert.deepEqual(hd.onbuild!.heredocs.map((h) => h.content), ['make\n']);
  assert.equal(hd.endLine, 5);
});

test('ONBUILD errors', () => {
  rejects(() => parseDockerfile('FROM x\nONBUILD ONBUILD RUN x\n'), 'Dockerfile parse error on line 2: Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed');
  rejects(() => parseDockerfile('FROM x\nONBUILD from y\n'), "Dockerfile parse error on line 2: FROM isn't allowed as an ONBUILD trigger");
  rejects(() => parseDockerfile('FROM x\nONBUILD MAINTAINER me\n'), "Dockerfile parse error on line 2: MAINTAINER isn't allowed as an ONBUILD trigger");
  rejects(() => parseDockerfile('FROM x\nONBUILD\n'), 'Dockerfile parse error on line 2: ONBUILD requires at least one argument');
  rejects(() => parseDockerfile('FROM x\nONBUILD RUN --bogus x\n'), 'Dockerfile parse error on line 2: unknown flag: bogus');
  rejects(() => parseDockerfile('FROM x\nONBUILD NOPE x\n'), 'Dockerfile parse error on line 2: unknown instruction: NOPE');
});

test('flags: values, bool flags, repeated --mount, quotes, `--` ends them, flags only before the arguments', () => {
  const copy = one('COPY --from=builder --chown=1000:1000 --chmod=644 --link /src /dst');
  assert.deepEqual(copy.flags, { from: 'builder', chown: '1000:1000', chmod: '644', link: 'true' });
  assert.deepEqual(copy.args, ['/src', '/dst']);
  assert.equal(copy.raw, '/src /dst');
  assert.equal(one('COPY --link=false a b').flags.link, 'false');
  assert.equal(one('COPY --link=TRUE a b').flags.link, 'true');
  const run = one('RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=tok --network=none make');
  assert.deepEqual(run.flagValues, { mount: ['type=cache,target=/root/.cache', 'type=secret,id=tok'], network: ['none'] });
  assert.equal(run.flags.mount, 'type=secret,id=tok');
  assert.deepEqual(run.args, ['make']);
  assert.deepEqual(one('ADD --keep-git-dir --checksum=sha256:abc https://x/y.tar /z').flags, { 'keep-git-dir': 'true', checksum: 'sha256:abc' });
  assert.deepEqual(one('COPY --chown="app user" a b').flags, { chown: 'app user' });
  assert.deepEqual(one('RUN -- echo --not-a-flag').args, ['echo --not-a-flag']);
  assert.deepEqual(one('RUN echo --not-a-flag').args, ['echo --not-a-flag']);
  const hc = one('HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --start-interval=1s --retries=3 CMD curl -f http://localhost/');
  assert.deepEqual(hc.flags, { interval: '30s', timeout: '3s', 'start-period': '5s', 'start-interval': '1s', retries: '3' });
  assert.deepEqual(hc.args, ['CMD', 'curl -f http://localhost/']);
  assert.equal(hc.json, false);
});

test('flags: errors name the line', () => {
  rejects(() => parseDockerfile('FROM x\n\nCOPY --bogus=1 a b\n'), 'Dockerfile parse error on line 3: unknown flag: bogus');
  rejects(() => parseDockerfile('FROM x\nADD --from=y a b\n'), 'Dockerfile parse error on line 2: unknown flag: from');
  rejects(() => parseDockerfile('FROM x\nENV --x=1 A=B\n'), 'Dockerfile parse error on line 2: unknown flag: x');
  rejects(() => parseDockerfile('FROM x\nCMD --help\n'), 'Dockerfile parse error on line 2: unknown flag: help');
  rejects(() => parseDockerfile('FROM x\nCOPY --from a b\n'), 'Dockerfile parse error on line 2: missing a value on flag: from');
  rejects(() => parseDockerfile('FROM x\nCOPY --from=a --from=b a b\n'), 'Dockerfile parse error on line 2: duplicate flag specified: from');
  rejects(() => parseDockerfile('FROM x\nCOPY --link=maybe a b\n'), 'Dockerfile parse error on line 2: expecting boolean value for flag link, not: maybe');
  rejects(() => parseDockerfile('FROM x\nCOPY --link= a b\n'), 'Dockerfile parse error on line 2: missing a value on flag: link');
  rejects(() => parseDockerfile('FROM --platform linux/amd64 x\n'), 'Dockerfile parse error on line 1: missing a value on flag: platform');
});

test('exec form: a JSON array of strings; anything else is shell form', () => {
  const cmd = one('CMD ["echo", "hi there"]');
  assert.equal(cmd.json, true);
  assert.deepEqual(cmd.args, ['echo', 'hi there']);
  assert.equal(cmd.raw, '["echo", "hi there"]');
  assert.deepEqual([one('RUN   [ "a" ]  ').json, one('RUN   [ "a" ]  ').args], [true, ['a']]);
  assert.deepEqual([one('ENTRYPOINT []').json, one('ENTRYPOINT []').args], [true, []]);
  // not valid JSON: shell form, kept whole
  for (const text of ['CMD [ "a" ', "CMD ['a']", 'CMD ["a"] extra', 'CMD [a]', 'CMD echo ["a"]']) {
    const ins = one(text);
    assert.equal(ins.json, false, text);
    assert.deepEqual(ins.args, [text.slice(4).trim()], text);
  }
  assert.deepEqual(one('CMD').args, []);
  // JSON escapes are JSON's, whatever the Dockerfile escape
  assert.deepEqual(one('CMD ["a\\"b", "\\u00e9"]').args, ['a"b', 'é']);
  rejects(() => one('CMD ["a", 1]'), 'Dockerfile parse error on line 1: when using JSON array syntax, arrays must be comprised of strings only');
  rejects(() => one('COPY [["a"], "b"]'), /arrays must be comprised of strings only/);
});

test('exec form for list instructions: COPY/ADD/VOLUME; shell form gives quote-aware words', () => {
  assert.deepEqual([one('COPY ["a b", "/c d/"]').json, one('COPY ["a b", "/c d/"]').args], [true, ['a b', '/c d/']]);
  assert.deepEqual(one('COPY "a b" c\\ d /e/').args, ['"a b"', 'c\\ d', '/e/']);
  assert.deepEqual(one('VOLUME ["/data", "/logs"]').args, ['/data', '/logs']);
  assert.deepEqual(one('VOLUME /data   /logs').args, ['/data', '/logs']);
  assert.equal(one('VOLUME /data').json, false);
  assert.deepEqual(one('EXPOSE 80/tcp   "443"').args, ['80/tcp', '"443"']);
});

test('SHELL must be a non-empty JSON array', () => {
  assert.deepEqual(one('SHELL ["powershell", "-command"]').args, ['powershell', '-command']);
  rejects(() => one('SHELL /bin/bash -c'), 'Dockerfile parse error on line 1: SHELL requires the arguments to be in JSON form');
  rejects(() => one('SHELL []'), 'Dockerfile parse error on line 1: SHELL requires at least one argument');
  rejects(() => one('SHELL'), 'Dockerfile parse error on line 1: SHELL requires at least one argument');
});

test('single-argument instructions keep their text whole', () => {
  assert.deepEqual(one('WORKDIR /my app/dir').args, ['/my app/dir']);
  assert.deepEqual(one('USER app:staff').args, ['app:staff']);
  assert.deepEqual(one('STOPSIGNAL SIGKILL').args, ['SIGKILL']);
  assert.deepEqual(one('MAINTAINER Jane Doe <jane@example.com>').args, ['Jane Doe <jane@example.com>']);
  rejects(() => one('WORKDIR'), 'Dockerfile parse error on line 1: WORKDIR requires exactly one argument');
  rejects(() => one('USER'), 'Dockerfile parse error on line 1: USER requires exactly one argument');
  rejects(() => one('STOPSIGNAL'), 'Dockerfile parse error on line 1: STOPSIGNAL requires exactly one argument');
  rejects(() => parseDockerfile('FROM x\nMAINTAINER\n'), 'Dockerfile parse error on line 2: MAINTAINER requires exactly one argument');
});

test('ENV: key=value pairs with quotes kept, and the legacy `ENV key value with spaces`', () => {
  assert.deepEqual(keyValues(one('ENV A=1 B="two words" C=\'$x\' D=e\\ f E=')), [
    { key: 'A', value: '1' },
    { key: 'B', value: '"two words"' },
    { key: 'C', value: "'$x'" },
    { key: 'D', value: 'e\\ f' },
    { key: 'E', value: '' },
  ]);
  assert.deepEqual(keyValues(one('ENV PATH /usr/local/bin:$PATH and  more')), [{ key: 'PATH', value: '/usr/local/bin:$PATH and  more' }]);
  assert.deepEqual(keyValues(one('ENV MSG "hello world"')), [{ key: 'MSG', value: '"hello world"' }]);
  assert.deepEqual(keyValues(one('ENV A=1 \\\n    B=2')), [{ key: 'A', value: '1' }, { key: 'B', value: '2' }]);
});

test('ENV and LABEL errors', () => {
  rejects(() => parseDockerfile('FROM x\nENV ONLYKEY\n'), 'Dockerfile parse error on line 2: ENV must have two arguments');
  rejects(() => parseDockerfile('FROM x\nLABEL ONLYKEY\n'), 'Dockerfile parse error on line 2: LABEL must have two arguments');
  rejects(() => parseDockerfile('FROM x\nENV A=1 B\n'), 'Dockerfile parse error on line 2: Syntax error - can\'t find = in "B". Must be of the form: name=value');
  rejects(() => parseDockerfile('FROM x\nENV\n'), 'Dockerfile parse error on line 2: ENV requires at least one argument');
  rejects(() => parseDockerfile('FROM x\nLABEL\n'), 'Dockerfile parse error on line 2: LABEL requires at least one argument');
  rejects(() => parseDockerfile('FROM x\nENV =v\n'), 'Dockerfile parse error on line 2: ENV names can not be blank');
});

test('LABEL and ARG pairs; ARG without a default has no value', () => {
  assert.deepEqual(keyValues(one('LABEL "com.example.vendor"="ACME" version=1.0 description="multi\\\n word"')), [
    { key: '"com.example.vendor"', value: '"ACME"' },
    { key: 'version', value: '1.0' },
    { key: 'description', value: '"multi word"' },
  ]);
  assert.deepEqual(keyValues(one('ARG A')), [{ key: 'A' }]);
  assert.deepEqual(keyValues(one('ARG A= B=x C="y z"')), [{ key: 'A', value: '' }, { key: 'B', value: 'x' }, { key: 'C', value: '"y z"' }]);
  rejects(() => parseDockerfile('ARG\nFROM x\n'), 'Dockerfile parse error on line 1: ARG requires at least one argument');
  rejects(() => parseDockerfile('ARG =1\nFROM x\n'), 'Dockerfile parse error on line 1: ARG names can not be blank');
  rejects(() => keyValues(one('RUN x')), 'Dockerfile parse error on line 1: RUN has no key/value arguments');
});

test('FROM errors: argument count, stage names', () => {
  rejects(() => parseDockerfile('FROM\n'), 'Dockerfile parse error on line 1: FROM requires either one or three arguments');
  rejects(() => parseDockerfile('FROM a b\n'), 'Dockerfile parse error on line 1: FROM requires either one or three arguments');
  rejects(() => parseDockerfile('FROM a TO b\n'), 'Dockerfile parse error on line 1: FROM requires either one or three arguments');
  rejects(() => parseDockerfile('FROM a AS 1st\n'), 'Dockerfile parse error on line 1: invalid name for build stage: "1st", name can\'t start with a number or contain symbols');
  rejects(() => parseDockerfile('FROM a AS b@d\n'), /invalid name for build stage: "b@d"/);
  assert.equal(parseDockerfile('FROM a AS my-stage_2.x\n').stages[0]!.name, 'my-stage_2.x');
  rejects(() => parseDockerfile('FROM a AS one\nFROM b as ONE\n'), 'Dockerfile parse error on line 2: duplicate stage name "one"');
});

test('structure errors: empty file, no instructions, nothing before FROM but ARG, unknown instruction', () => {
  rejects(() => parseDockerfile(''), 'the Dockerfile (Dockerfile) cannot be empty');
  rejects(() => parseDockerfile(' \n\n'), 'the Dockerfile (Dockerfile) cannot be empty');
  rejects(() => parseDockerfile('', 'Dockerfile.dev'), 'the Dockerfile (Dockerfile.dev) cannot be empty');
  rejects(() => parseDockerfile('# just a comment\n'), /^Dockerfile parse error on line 1: file with no instructions$/);
  rejects(() => parseDockerfile('ARG A\nRUN echo\nFROM x\n'), 'Dockerfile parse error on line 2: no build stage in current context');
  rejects(() => parseDockerfile('ARG A=1\n'), 'dockerfile contains no stages to build');
  rejects(() => parseDockerfile('FROM x\n\n# c\nFOO bar\n'), 'Dockerfile parse error on line 4: unknown instruction: FOO');
  rejects(() => parseDockerfile('FROM x\nrunn echo\n'), 'Dockerfile parse error on line 2: unknown instruction: RUNN');
});

test('argument-count errors of other instructions', () => {
  rejects(() => parseDockerfile('FROM x\nCOPY onlyone\n'), 'Dockerfile parse error on line 2: COPY requires at least two arguments, but only one was provided. Destination could not be determined');
  rejects(() => parseDockerfile('FROM x\nADD\n'), /line 2: ADD requires at least two arguments/);
  rejects(() => parseDockerfile('FROM x\nEXPOSE\n'), 'Dockerfile parse error on line 2: EXPOSE requires at least one argument');
  rejects(() => parseDockerfile('FROM x\nVOLUME\n'), 'Dockerfile parse error on line 2: VOLUME requires at least one argument');
  rejects(() => parseDockerfile('FROM x\nVOLUME ["/a", " "]\n'), 'Dockerfile parse error on line 2: VOLUME specified can not be an empty string');
});

test('HEALTHCHECK: type and command, NONE, checks', () => {
  const exec = one('HEALTHCHECK CMD ["curl", "-f", "http://x/"]');
  assert.deepEqual([exec.json, exec.args], [true, ['CMD', 'curl', '-f', 'http://x/']]);
  assert.deepEqual(one('healthcheck none').args, ['none']);
  rejects(() => one('HEALTHCHECK'), 'Dockerfile parse error on line 1: HEALTHCHECK requires at least one argument');
  rejects(() => one('HEALTHCHECK NONE x'), 'Dockerfile parse error on line 1: HEALTHCHECK NONE takes no arguments');
  rejects(() => one('HEALTHCHECK RUN x'), 'Dockerfile parse error on line 1: Unknown type "RUN" in HEALTHCHECK (try CMD)');
  rejects(() => one('HEALTHCHECK CMD'), 'Dockerfile parse error on line 1: Missing command after HEALTHCHECK CMD');
  rejects(() => one('HEALTHCHECK --interval=5 CMD x'), 'Dockerfile parse error on line 1: time: invalid duration "5"');
  rejects(() => one('HEALTHCHECK --timeout=10us CMD x'), 'Dockerfile parse error on line 1: Interval "timeout" cannot be less than 1ms');
  rejects(() => one('HEALTHCHECK --retries=x CMD x'), /invalid syntax/);
  rejects(() => one('HEALTHCHECK --retries=-1 CMD x'), /--retries cannot be negative/);
  rejects(() => one('HEALTHCHECK --bogus=1 CMD x'), 'Dockerfile parse error on line 1: unknown flag: bogus');
  assert.equal(one('HEALTHCHECK --interval=0s CMD x').flags.interval, '0s');
});

test('the line parser reports its errors in file order before per-instruction checks, as Docker does', () => {
  // the JSON error on line 3 is found while splitting lines, before FOO on line 2 is checked
  rejects(() => parseDockerfile('FROM x\nFOO\nCMD [1]\n'), /^Dockerfile parse error on line 3: /);
  rejects(() => parseDockerfile('FROM x\nFOO\nRUN <<EOF\n'), 'Dockerfile parse error on line 3: unterminated heredoc');
});

test('parseInstruction: one instruction, continuations and heredocs allowed', () => {
  const ins = one('  env A=1 \\\n  B=2');
  assert.equal(ins.keyword, 'ENV');
  assert.equal(ins.endLine, 2);
  assert.deepEqual(one('COPY <<EOF /x\nhi\nEOF').heredocs.map((h) => h.content), ['hi\n']);
  rejects(() => one('CMD a\nCMD b'), 'Dockerfile parse error on line 2: expected a single instruction');
  rejects(() => one('  '), /file with no instructions/);
  rejects(() => one('NOPE'), 'Dockerfile parse error on line 1: unknown instruction: NOPE');
});

test('raw and original: flags and continuation', () => {
  const ins = one('RUN --mount=type=cache,target=/x \\\n  apt-get update');
  assert.equal(ins.raw, 'apt-get update');
  assert.equal(ins.original, 'RUN --mount=type=cache,target=/x   apt-get update');
  assert.deepEqual(ins.args, ['apt-get update']);
});

test('parseWords keeps quotes and escapes, splits on unquoted blanks', () => {
  assert.deepEqual(parseWords('a "b c" \'d e\' f\\ g ""  h'), ['a', '"b c"', "'d e'", 'f\\ g', '""', 'h']);
  assert.deepEqual(parseWords('a`  b', '`'), ['a` ', 'b']);
  assert.deepEqual(parseWords('"a\\"b" c\\'), ['"a\\"b"', 'c']);
  assert.deepEqual(parseWords('   '), []);
});

// ---- properties

test('property: any text is parsed or refused with a 400, never another error', () => {
  const line = fc.oneof(
    fc.string(),
    fc.string({ unit: fc.constantFrom('FROM ', 'RUN ', 'ENV ', 'ARG ', 'COPY ', 'ONBUILD ', 'HEALTHCHECK ', '# escape=`\n', '\\', '`', '\n', ' ', '"', "'", '[', ']', ',', '=', '<<', 'EOF', '-', '--mount=', 'a', '$', '{', '}', 'AS ') }),
  );
  fc.assert(
    fc.property(fc.array(line, { maxLength: 6 }), (lines) => {
      for (const text of [lines.join('\n'), `FROM busybox\n${lines.join('\n')}`]) {
        try {
          parseDockerfile(text);
        } catch (err) {
          assert.ok(err instanceof SampanError && err.code === 'INVALID_ARGUMENT', `${JSON.stringify(text)}: ${String(err)}`);
        }
      }
    }),
    { numRuns: 3000 },
  );
});

test('property: the exec form reads back the JSON array as written', () => {
  fc.assert(
    fc.property(fc.constantFrom('RUN', 'CMD', 'ENTRYPOINT', 'SHELL'), fc.array(fc.string(), { minLength: 1, maxLength: 5 }), (k, argv) => {
      const ins = all(`FROM busybox\n${k} ${JSON.stringify(argv)}\n`)[1]!;
      assert.equal(ins.json, true);
      assert.deepEqual(ins.args, argv);
    }),
    { numRuns: 2000 },
  );
});

test('property: ENV and LABEL values in double quotes read back, once expanded, as written', () => {
  const quote = (v: string) => `"${v.replace(/["\\$]/g, '\\$&')}"`;
  const pairs = fc.uniqueArray(fc.tuple(fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_.-]{0,10}$/), fc.string().filter((v) => !/[\r\n]/.test(v))), { minLength: 1, maxLength: 4, selector: ([k]) => k });
  fc.assert(
    fc.property(fc.constantFrom('ENV', 'LABEL'), pairs, (k, kvs) => {
      const ins = all(`FROM busybox\n${k} ${kvs.map(([key, v]) => `${key}=${quote(v)}`).join(' ')}\n`)[1]!;
      assert.deepEqual(keyValues(ins).map(({ key, value }) => [key, expandWord(value!, () => undefined)]), kvs);
    }),
    { numRuns: 2000 },
  );
});
