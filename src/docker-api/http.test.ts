import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import fc from 'fast-check';
import { SampanError } from '../lib/errors.js';
import { Ctx } from './http.js';

const filtersOf = (raw: string) => new Ctx({} as IncomingMessage, undefined, '/containers/json', new URLSearchParams({ filters: raw }), '1.44').filters();

/** Filter keys and values as clients send them (any text: labels carry `=`, names spaces and quotes). */
const filters = fc.dictionary(fc.string(), fc.uniqueArray(fc.string(), { maxLength: 4 }), { maxKeys: 5 });

test('property: filters read back as sent, in the current {"k": {"v": true}} form and the older {"k": ["v"]} one', () => {
  fc.assert(
    fc.property(filters, (f) => {
      const want = new Map(Object.entries(f));
      assert.deepEqual(filtersOf(JSON.stringify(f)), want);
      const current = Object.fromEntries(Object.entries(f).map(([k, vs]) => [k, Object.fromEntries(vs.map((v) => [v, true]))]));
      // the values of an object are a set: their order is not kept (integer-like keys come first)
      const sorted = (m: Map<string, string[]>) => new Map([...m].map(([k, vs]) => [k, [...vs].sort()]));
      assert.deepEqual(sorted(filtersOf(JSON.stringify(current))), sorted(want));
    }),
    { numRuns: 1000 },
  );
});

/** What Docker's filters.FromJSON takes: a map of string lists or of string→bool maps (null for none). */
const dockerAccepts = (v: unknown): boolean =>
  v === null ||
  (typeof v === 'object' &&
    !Array.isArray(v) &&
    Object.values(v as object).every((x) => x === null || (Array.isArray(x) ? x.every((s) => typeof s === 'string') : typeof x === 'object' && Object.values(x as object).every((b) => b === null || typeof b === 'boolean'))));

test('property: any filters parameter is read as Docker reads it, or refused with INVALID_ARGUMENT', () => {
  const raw = fc.oneof(fc.string(), fc.json(), fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 3 }).map((o) => JSON.stringify(o)));
  fc.assert(
    fc.property(raw, (s) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(s);
      } catch {
        parsed = undefined;
      }
      const accepted = s !== '' && parsed !== undefined && dockerAccepts(parsed);
      try {
        const m = filtersOf(s);
        assert.ok(accepted || s === '', `accepted ${s}`);
        for (const vs of m.values()) assert.ok(vs.every((v) => typeof v === 'string'));
      } catch (err) {
        if (!(err instanceof SampanError)) throw err;
        assert.equal(err.code, 'INVALID_ARGUMENT');
        assert.ok(!accepted, `refused ${s}: ${err.message}`);
      }
    }),
    { numRuns: 3000 },
  );
});

test('Router: parameters, image names with slashes before a suffix, HEAD as GET, a wrong method', async () => {
  const { Router } = await import('./http.js');
  const r = new Router();
  const seen: string[] = [];
  const h = (tag: string) => (ctx: { params: Record<string, string> }) => void seen.push(`${tag} ${JSON.stringify(ctx.params)}`);
  r.add('GET', '/images/json', h('list'));
  r.add('GET', '/images/{name*}/json', h('inspect'));
  r.add('GET', '/images/{name*}/get', h('save'));
  r.add('DELETE', '/images/{name*}', h('rmi'));
  r.add('GET', '/containers/{id}/json', h('container'));
  r.add('GET', '/swarm/{rest*}', h('swarm'));
  const call = (method: string, p: string) => {
    const hit = r.match(method, p);
    if (!hit || hit === 'method') return hit ?? 'none';
    (hit.handler as (c: { params: Record<string, string> }) => void)({ params: hit.params });
    return seen.pop();
  };
  assert.equal(call('GET', '/images/json'), 'list {}');
  assert.equal(call('GET', '/images/localhost:5000/team/app:1/json'), 'inspect {"name":"localhost:5000/team/app:1"}');
  assert.equal(call('GET', '/images/busybox/get'), 'save {"name":"busybox"}');
  assert.equal(call('DELETE', '/images/a/b:c'), 'rmi {"name":"a/b:c"}');
  assert.equal(call('HEAD', '/containers/abc/json'), 'container {"id":"abc"}');
  assert.equal(call('GET', '/containers/abc/json/'), 'container {"id":"abc"}');
  assert.equal(call('GET', '/containers/a%20b/json'), 'container {"id":"a b"}');
  assert.equal(call('GET', '/swarm/x/y'), 'swarm {"rest":"x/y"}');
  assert.equal(call('POST', '/images/json'), 'method');
  assert.equal(call('GET', '/images/busybox'), 'method');
  assert.equal(call('GET', '/nothing'), 'none');
});
