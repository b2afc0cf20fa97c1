import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SampanError } from './errors.js';
import { DEFAULT_DOMAIN, familiarString, parseReference, type Reference } from './reference.js';

// Docker's grammar (distribution/reference regexp.go), anchored
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?`;
const NAME_RE = new RegExp(`^${DOMAIN}/${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[\w][\w.-]{0,127}$/;

const pick = <T>(xs: readonly T[]) => fc.constantFrom(...xs);
const component = fc.stringMatching(new RegExp(`^${COMPONENT}$`)).filter((s) => s.length <= 30);
const domain = fc.oneof(
  pick(['docker.io', 'index.docker.io', 'localhost', 'localhost:5000', 'registry.example.com', 'Quay.IO', '127.0.0.1:5000', '[::1]:5000']),
  fc.stringMatching(new RegExp(`^${DOMAIN}$`)).filter((d) => d.length <= 40 && (d.includes('.') || d.includes(':'))),
);
const tag = fc.stringMatching(/^[\w][\w.-]{0,20}$/);
const digest = fc.stringMatching(/^[0-9a-f]{64}$/).map((h) => `sha256:${h}`);
/**
 * References as users write them: [domain/]path[:tag][@digest]. A Docker Hub path whose first component
 * looks like a host ("a.b/c", "docker.io/a.b/c") is a host in Docker too: such names are left out.
 */
const refString = fc
  .record({ domain: fc.option(domain), path: fc.array(component, { minLength: 1, maxLength: 3 }), tag: fc.option(tag), digest: fc.option(digest) })
  .filter((r) => !((!r.domain || /^(?:index\.)?docker\.io$/.test(r.domain)) && r.path.length > 1 && r.path[0]!.includes('.')))
  .map((r) => `${r.domain ? `${r.domain}/` : ''}${r.path.join('/')}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`);
/** Mostly reference-like text with the characters that matter to the grammar. */
const noisy = fc.oneof(
  fc.string(),
  fc.string({ unit: pick(['a', 'B', '0', '.', '-', '_', '__', '/', ':', '@', 'sha256:', 'a'.repeat(64), 'localhost', ' ', '[', ']', '\u00e9']) }),
  refString.chain((s) => fc.nat(s.length).map((i) => s.slice(0, i) + s.slice(i + 1))),
);

const parses = (s: string): Reference | undefined => {
  try {
    return parseReference(s);
  } catch (err) {
    assert.ok(err instanceof SampanError && err.code === 'INVALID_ARGUMENT', `${JSON.stringify(s)}: ${String(err)}`);
    return undefined;
  }
};

test('property: any text either parses or is refused with an INVALID_ARGUMENT error', () => {
  fc.assert(fc.property(fc.oneof(noisy, refString), (s) => void parses(s)), { numRuns: 2000 });
});

test('property: what parses is a name in Docker\'s grammar, with a valid tag', () => {
  fc.assert(
    fc.property(fc.oneof(noisy, refString), (s) => {
      const r = parses(s);
      if (!r) return;
      assert.match(`${r.domain}/${r.path}`, NAME_RE, JSON.stringify(s));
      if (r.tag !== undefined) assert.match(r.tag, TAG_RE);
      if (r.domain === DEFAULT_DOMAIN) assert.ok(r.path.includes('/'), 'official images are library/NAME');
    }),
    { numRuns: 2000 },
  );
});

test('property: valid references parse, and their familiar form parses back to the same reference', () => {
  fc.assert(
    fc.property(refString, (s) => {
      const r = parseReference(s);
      assert.deepEqual(parseReference(familiarString(r)), r, `${s} → ${familiarString(r)}`);
    }),
    { numRuns: 2000 },
  );
});

test('familiar forms drop docker.io and library/ only where Docker does', () => {
  assert.equal(familiarString(parseReference('docker.io/library/busybox:1')), 'busybox:1');
  assert.equal(familiarString(parseReference('index.docker.io/user/app')), 'user/app');
  assert.equal(familiarString(parseReference('library/a/b')), 'library/a/b');
  assert.equal(familiarString(parseReference('localhost:5000/library/x')), 'localhost:5000/library/x');
});
