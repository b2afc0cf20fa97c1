import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { Htpasswd, HtpasswdError, parseHtpasswd } from './htpasswd.js';

const dir = await fs.mkdtemp(join(tmpdir(), 'sampan-htpasswd-test-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
let n = 0;

const hash = (pw: string, prefix = '$2y$') => prefix + bcrypt.hashSync(pw, 4).slice(4);

async function write(text: string): Promise<string> {
  const f = join(dir, `htpasswd-${n++}`);
  await fs.writeFile(f, text);
  return f;
}

test('verifies $2y$, $2a$ and $2b$ entries; wrong, unknown and empty passwords fail', async () => {
  const f = await write(`# users\nalice:${hash('wonderland', '$2y$')}\n\nbob:${hash('builder', '$2a$')}\r\ncarol:${hash('', '$2b$')}\n`);
  const h = await Htpasswd.load(f);
  assert.deepEqual(h.list(), ['alice', 'bob', 'carol']);
  assert.equal(await h.verify('alice', 'wonderland'), true);
  assert.equal(await h.verify('alice', 'wonderland'), true); // remembered
  assert.equal(await h.verify('bob', 'builder'), true);
  assert.equal(await h.verify('alice', 'builder'), false);
  assert.equal(await h.verify('alice', 'Wonderland'), false);
  assert.equal(await h.verify('mallory', 'wonderland'), false);
  assert.equal(await h.verify('carol', ''), false);
  assert.equal(await h.verify('', ''), false);
});

test('non-bcrypt entries are refused at load with the line and a hint', async () => {
  const cases: [string, RegExp][] = [
    ['alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=', /line 1: user "alice": SHA1 \(\{SHA\}\) is not supported.*htpasswd -B/],
    ['# c\nbob:$apr1$abc$0123456789abcdefghijkl', /line 2: user "bob": MD5 \(\$apr1\$\)/],
    ['carol:plaintext', /crypt or plain text/],
    ['dave:$6$salt$hash', /"6" hashes/],
    ['nocolon', /line 1: expected USER:HASH/],
    [`a:${hash('x')}\na:${hash('y')}`, /appears twice/],
    [`a:${hash('x').slice(0, 20)}`, /not supported/],
  ];
  for (const [text, re] of cases) {
    const f = await write(text);
    await assert.rejects(Htpasswd.load(f), (err: Error) => err instanceof HtpasswdError && re.test(err.message) && err.message.includes(f));
  }
  await assert.rejects(Htpasswd.load(join(dir, 'missing')), HtpasswdError);
  assert.equal(parseHtpasswd('').size, 0);
});

test('reloads when the file changes (in place or replaced); a broken new file keeps the old entries', async () => {
  const f = await write(`alice:${hash('one')}\n`);
  const h = await Htpasswd.load(f, { checkIntervalMs: 0 });
  assert.equal(await h.verify('alice', 'one'), true);

  // rewritten in place, longer (size changes) and with a later mtime
  await fs.writeFile(f, `alice:${hash('two')}\nbob:${hash('three')}\n`);
  const later = new Date(Date.now() + 5000);
  await fs.utimes(f, later, later);
  assert.equal(await h.verify('alice', 'two'), true);
  assert.equal(await h.verify('alice', 'one'), false); // the remembered success is gone with the old file
  assert.equal(await h.verify('bob', 'three'), true);

  // replaced through rename (new inode)
  const tmp = `${f}.tmp`;
  await fs.writeFile(tmp, `alice:${hash('four')}\n`);
  await fs.rename(tmp, f);
  assert.equal(await h.verify('alice', 'four'), true);
  assert.equal(h.has('bob'), false);

  // a broken file is not taken: the previous entries stay
  await fs.writeFile(f, `alice:{SHA}xyz\n`);
  const later2 = new Date(Date.now() + 10_000);
  await fs.utimes(f, later2, later2);
  assert.equal(await h.verify('alice', 'four'), true);
});

test('the check interval bounds how often the file is looked at', async () => {
  const f = await write(`alice:${hash('one')}\n`);
  const h = await Htpasswd.load(f, { checkIntervalMs: 60_000 });
  await fs.writeFile(f, `alice:${hash('two')}\nbob:${hash('x')}\n`);
  assert.equal(await h.verify('alice', 'two'), false); // not looked at yet
  await h.refresh(true);
  assert.equal(await h.verify('alice', 'two'), true);
});
