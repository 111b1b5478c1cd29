// The dev split of the Q2Q test side: deterministic, disjoint, every pair of a query on its query's side,
// about the asked fraction, and the judged queries of each side.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { devSide, judgedQueriesBySide, splitDev } from '../lib/eval/splits.ts';
import { judgedLabels, normaliseQuery } from '../lib/eval/judged.ts';
import { MinielmError } from '../lib/errors.ts';

// 600 queries in 300 groups of two (each pair in both directions, as Q2Q writes them).
const pairs: { query: string; rewrite: string }[] = [];
for (let g = 0; g < 300; g++) {
  const a = `query ${g} a`, b = `Query ${g}  B`;
  pairs.push({ query: a, rewrite: b }, { query: b, rewrite: a });
}

test('deterministic, disjoint, and every pair of a query on that query\'s side', () => {
  const s1 = splitDev(pairs, { seed: 7, by: 'query' });
  const s2 = splitDev(pairs, { seed: 7, by: 'query' });
  assert.equal(s1, s2);
  const dev = new Set(s1.devQueries.map(normaliseQuery)), testSide = new Set(s1.testQueries.map(normaliseQuery));
  for (const q of dev) assert.not.ok(testSide.has(q), `${q} on both sides`);
  assert.is(s1.dev.length + s1.test.length, pairs.length);
  for (const p of s1.dev) assert.ok(dev.has(normaliseQuery(p.query)));
  for (const p of s1.test) assert.ok(testSide.has(normaliseQuery(p.query)));
  assert.is(dev.size + testSide.size, 600);
  // By query, the side is a function of the (normalised) query alone.
  for (const q of s1.devQueries) assert.is(devSide(q.toUpperCase(), { seed: 7 }), 'dev');
  const c1 = splitDev(pairs, { seed: 7 });
  assert.equal(c1, splitDev(pairs, { seed: 7 }));
  assert.is(c1.by, 'component', 'whole groups by default');
  assert.is(c1.dev.length + c1.test.length, pairs.length);
});

test('about the asked fraction; another seed gives another split', () => {
  const half = splitDev(pairs, { seed: 7, by: 'query' });
  assert.ok(half.devQueries.length > 240 && half.devQueries.length < 360, `${half.devQueries.length} of 600 in dev`);
  const fifth = splitDev(pairs, { seed: 7, fraction: 0.2, by: 'query' });
  assert.ok(fifth.devQueries.length > 80 && fifth.devQueries.length < 160, `${fifth.devQueries.length} of 600 in dev`);
  assert.not.equal(splitDev(pairs, { seed: 8, by: 'query' }).devQueries, half.devQueries);
  assert.not.equal(splitDev(pairs, { seed: 8 }).devQueries, splitDev(pairs, { seed: 7 }).devQueries);
  // Split by query, a pair's rewrite lands on the other side about half the time.
  assert.ok(half.crossSideRewrites > 0);
});

test('by component (the default): each group of paired queries stays on one side', () => {
  const s = splitDev(pairs, { seed: 7 });
  assert.is(s.crossSideRewrites, 0);
  const dev = new Set(s.devQueries.map(normaliseQuery));
  for (const p of pairs) assert.is(dev.has(normaliseQuery(p.query)), dev.has(normaliseQuery(p.rewrite)));
  assert.ok(s.devQueries.length > 240 && s.devQueries.length < 360);
  // A chain a - b - c is one group even though a and c are never paired with each other.
  const chains = Array.from({ length: 40 }, (_, g) => [{ query: `a${g}`, rewrite: `b${g}` }, { query: `b${g}`, rewrite: `c${g}` }, { query: `C${g}`, rewrite: `b${g}` }]).flat();
  const c = splitDev(chains, { seed: 1 });
  const chainDev = new Set(c.devQueries.map(normaliseQuery));
  for (let g = 0; g < 40; g++) assert.ok([`b${g}`, `c${g}`].every((q) => chainDev.has(q) === chainDev.has(`a${g}`)), `group ${g} split`);
  assert.ok(c.devQueries.length > 0 && c.testQueries.length > 0);
});

test('judged queries of each side: only those with a relevant product; unseen queries by the same hash', () => {
  const s = splitDev(pairs, { seed: 3, by: 'query' });
  const labels = judgedLabels([
    ...s.devQueries.slice(0, 3).map((q) => ({ query: q, productId: 'p', gain: 1 })),
    { query: s.devQueries[3], productId: 'p', gain: 0.5 }, // rated 2 of 3: below 2.33
    ...s.testQueries.slice(0, 2).map((q) => ({ query: q, productId: 'p', gain: 0.75 })),
    { query: 'never paired', productId: 'p', gain: 1 },
    { query: 'train only', productId: 'p', gain: 1 },
  ]);
  const sides = judgedQueriesBySide(labels, s);
  assert.equal(sides.dev, s.devQueries.slice(0, 3));
  assert.equal(sides.test, s.testQueries.slice(0, 2));
  const wider = judgedQueriesBySide(labels, s, { unseen: { queries: ['never paired', 'train only', 'Never  paired'], train: [{ query: 'train only', rewrite: 'x' }] } });
  const side = devSide('never paired', s);
  assert.equal(wider[side].slice(-1), ['never paired']);
  assert.is(wider.dev.length + wider.test.length, 6, 'train-side queries never join');
  assert.is(judgedQueriesBySide(labels, s, { minGain: 0.5 }).dev.length, 4);
});

test('bad options are named', () => {
  for (const [o, re] of [[{ fraction: 1 }, /fraction/], [{ seed: -1 }, /seed/], [{ by: 'x' }, /by must be/]] as const) {
    try {
      splitDev(pairs, o as never);
      assert.unreachable('expected an error');
    } catch (e) {
      assert.ok(e instanceof MinielmError && e.code === 'MINIELM_INVALID_ARGUMENT');
      assert.match((e as Error).message, re);
    }
  }
});

test.run();
