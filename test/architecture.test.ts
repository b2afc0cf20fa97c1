/**
 * The layering rules of docs/architecture.md, checked on the source: a component (src/engine, src/registry,
 * src/p2p, src/cluster, src/cli, src/web) imports another only through its public face (src/X/index.ts), src/lib
 * imports no component, and no two files import each other, directly or around a circle (type imports count:
 * a circle of types is still a circle of concepts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { REPO } from './harness.js';

const SRC = path.join(REPO, 'src');
const IMPORT = /^\s*(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm;

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sourceFiles(p)));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Each source file with the source files it imports (relative imports only; `.js` specifiers name `.ts` files). */
async function importGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const file of await sourceFiles(SRC)) {
    const text = await fs.readFile(file, 'utf8');
    const deps: string[] = [];
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1]!;
      if (!spec.startsWith('.')) continue;
      deps.push(path.resolve(path.dirname(file), spec).replace(/\.js$/, '.ts'));
    }
    graph.set(file, deps);
  }
  return graph;
}

const rel = (p: string) => path.relative(REPO, p);
/** src/X/... → X; src/X.ts → undefined. */
const componentOf = (p: string) => path.relative(SRC, p).split(path.sep).slice(0, -1)[0];

test('components import each other only through index.ts, and src/lib imports no component', async () => {
  const bad: string[] = [];
  for (const [file, deps] of await importGraph()) {
    if (file.endsWith('.test.ts')) continue; // a unit test may reach for a neighbour's fixture
    const from = componentOf(file);
    for (const dep of deps) {
      const to = componentOf(dep);
      if (!to || to === from || to === 'lib') continue;
      if (from === 'lib' || dep !== path.join(SRC, to, 'index.ts')) bad.push(`${rel(file)} -> ${rel(dep)}`);
    }
  }
  assert.deepEqual(bad, [], `imports past a component's index.ts:\n${bad.join('\n')}`);
});

test('no import cycles between source files', async () => {
  const graph = await importGraph();
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const cycles: string[] = [];
  const visit = (f: string): void => {
    state.set(f, 'open');
    stack.push(f);
    for (const d of graph.get(f) ?? []) {
      if (!graph.has(d)) continue;
      if (state.get(d) === 'open') cycles.push(stack.slice(stack.indexOf(d)).concat(d).map(rel).join(' -> '));
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of graph.keys()) if (!state.has(f)) visit(f);
  assert.deepEqual(cycles, [], `import cycles:\n${cycles.join('\n')}`);
});
