import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, createPublicKey } from 'node:crypto';
import { promises as fs, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KEY_FILE, KeyError, libtrustKeyId, loadOrCreateSigningKey, loadSigningKey, loadVerificationKeys } from './keys.js';

const dir = await fs.mkdtemp(join(tmpdir(), 'sampan-keys-test-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

test('libtrust key ID: 12 groups of 4 base32 characters, same for the private and public halves', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const kid = libtrustKeyId(publicKey);
  assert.match(kid, /^[A-Z2-7]{4}(?::[A-Z2-7]{4}){11}$/);
  assert.equal(libtrustKeyId(privateKey), kid);
  const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  assert.notEqual(libtrustKeyId(other.publicKey), kid);
  // the example key of the Docker registry token spec and the kid it gives for it
  const example = createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: 'm7zUpx3b-zmVE5cymSs64POG9QcyEpJaYCD82-549_Q', y: 'dU3biz8sZ_8GPB-odm8Wxz3lNDr1xcAQQPQaOcr1fmc' },
    format: 'jwk',
  });
  assert.equal(libtrustKeyId(example), 'PYYO:TEWU:V7JH:26JV:AQTZ:LJC3:SXVJ:XGHA:34F2:2LAQ:ZRMK:Z7Q6');
});

test('generated at first start under ROOT/auth/token-key.pem, mode 0600; the same key afterwards', async () => {
  const root = join(dir, 'root1');
  const k1 = await loadOrCreateSigningKey(root);
  assert.equal(k1.alg, 'ES256');
  const st = await fs.stat(join(root, KEY_FILE));
  assert.equal(st.mode & 0o777, 0o600);
  assert.deepEqual((await fs.readdir(join(root, 'auth'))).sort(), ['token-key.pem']); // no temp files left
  const k2 = await loadOrCreateSigningKey(root);
  assert.equal(k2.kid, k1.kid);
});

test('concurrent first starts agree on one key', async () => {
  const root = join(dir, 'root2');
  const keys = await Promise.all(Array.from({ length: 5 }, () => loadOrCreateSigningKey(root)));
  const onDisk = await loadOrCreateSigningKey(root);
  for (const k of keys) assert.equal(k.kid, onDisk.kid);
});

test('configured keys: EC P-256 → ES256, RSA → RS256; others refused; garbage refused', async () => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const f1 = join(dir, 'ec.pem');
  await fs.writeFile(f1, ec.privateKey.export({ type: 'sec1', format: 'pem' }));
  const k = await loadSigningKey(f1);
  assert.equal(k.alg, 'ES256');
  assert.equal(k.kid, libtrustKeyId(ec.publicKey));

  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const f2 = join(dir, 'rsa.pem');
  await fs.writeFile(f2, rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }));
  assert.equal((await loadSigningKey(f2)).alg, 'RS256');

  const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
  const f3 = join(dir, 'p384.pem');
  await fs.writeFile(f3, p384.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await assert.rejects(loadSigningKey(f3), /P-256/);

  const ed = generateKeyPairSync('ed25519');
  const f4 = join(dir, 'ed.pem');
  await fs.writeFile(f4, ed.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await assert.rejects(loadSigningKey(f4), KeyError);

  const f5 = join(dir, 'garbage.pem');
  await fs.writeFile(f5, 'not a key');
  await assert.rejects(loadSigningKey(f5), KeyError);
  await assert.rejects(loadSigningKey(join(dir, 'missing.pem')), KeyError);

  // a root whose key file is garbage is an error, not silently replaced
  const root = join(dir, 'root3');
  await fs.mkdir(join(root, 'auth'), { recursive: true });
  await fs.writeFile(join(root, KEY_FILE), 'garbage');
  await assert.rejects(loadOrCreateSigningKey(root), KeyError);
});

test('trusted public keys from PEM bundles', async () => {
  const a = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const b = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const f = join(dir, 'bundle.pem');
  await fs.writeFile(f, String(a.publicKey.export({ type: 'spki', format: 'pem' })) + String(createPublicKey(b.privateKey).export({ type: 'spki', format: 'pem' })));
  const keys = await loadVerificationKeys([f]);
  assert.deepEqual(keys.map((k) => k.alg), ['ES256', 'RS256']);
  assert.equal(keys[0]!.kid, libtrustKeyId(a.publicKey));
  const empty = join(dir, 'empty.pem');
  await fs.writeFile(empty, '');
  await assert.rejects(loadVerificationKeys([empty]), /no PEM/);
});
