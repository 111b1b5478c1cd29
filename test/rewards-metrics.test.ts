import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  combinedReward,
  DEFAULT_REWARD_WEIGHTS,
  diversityScore,
  engagementRates,
  preferPair,
  productCoverage,
  relevanceScore,
  rewardComponents,
} from '../lib/rewards/metrics.ts';
import { MinielmError } from '../lib/errors.ts';

const close = (a: number, b: number, what = ''): void => assert.ok(Math.abs(a - b) < 1e-12, `${what} expected ${b}, got ${a}`);

function throwsCode(fn: () => unknown, code: string, pattern: RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, MinielmError);
    assert.is((err as MinielmError).code, code);
    assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable('expected a MinielmError');
}

test('relevance is the mean M1 score; an empty list earns 0', () => {
  close(relevanceScore([1, 0, 0.5, 0.5]), 0.5);
  close(relevanceScore([0.2]), 0.2);
  close(relevanceScore([]), 0);
});

test('relevance rejects NaN and infinities, naming the position', () => {
  throwsCode(() => relevanceScore([0.5, Number.NaN]), 'MINIELM_INVALID_ARGUMENT', /relevance score \[1\].*NaN/);
  throwsCode(() => relevanceScore([Infinity]), 'MINIELM_INVALID_ARGUMENT', /finite/);
});

test('diversity: disjoint = 1, identical = 0, partial overlap, empty rewrite = 0', () => {
  close(diversityScore(['a', 'b'], ['c', 'd']), 1);
  close(diversityScore(['a', 'b', 'c'], ['c', 'b', 'a']), 0, 'fully overlapping');
  close(diversityScore(['a', 'b', 'c', 'd'], ['a', 'x', 'y', 'z']), 0.75);
  close(diversityScore(['a'], []), 0);
  close(diversityScore([], ['a', 'b']), 1, 'empty original');
});

test('diversity reads lists as sets: duplicates cannot inflate it', () => {
  // P~ = {a, x}: one shared of two distinct → 0.5, whatever the repetitions.
  close(diversityScore(['a'], ['a', 'x', 'x', 'x']), 0.5);
  close(diversityScore(['a', 'a'], ['a', 'a']), 0);
});

test('diversity rejects non-string ids', () => {
  throwsCode(() => diversityScore(['a'], ['b', 3 as unknown as string]), 'MINIELM_INVALID_ARGUMENT', /rewrite result ids\[1\]/);
});

test('coverage counts distinct relevant products across rewrites, with a configurable threshold', () => {
  const gains = new Map([['a', 1], ['b', 0.6], ['c', 0.1], ['d', 0]]);
  const lists = [['a', 'b', 'c'], ['a', 'd'], ['b', 'a', 'a']];
  assert.is(productCoverage(lists, gains), 2); // a, b (threshold 0.5)
  assert.is(productCoverage(lists, gains, { threshold: 0.05 }), 3); // a, b, c
  assert.is(productCoverage(lists, gains, { threshold: 0.9 }), 1);
  assert.is(productCoverage([], gains), 0);
  assert.is(productCoverage([[], []], gains), 0);
  assert.is(productCoverage(lists, (id) => (id === 'c' ? 1 : 0)), 1);
});

test('coverage: an unknown product is an error, not silently irrelevant', () => {
  throwsCode(() => productCoverage([['a', 'zz']], new Map([['a', 1]])), 'MINIELM_INVALID_ARGUMENT', /"zz"/);
  throwsCode(() => productCoverage([['a']], () => Number.NaN), 'MINIELM_INVALID_ARGUMENT', /relevance of product "a"/);
});

test('engagement rates divide by the list length; empty list gives zeros', () => {
  const r = engagementRates({ clicks: 3, addToCart: 2, purchases: 1, listLength: 10 });
  close(r.click, 0.3);
  close(r.addToCart, 0.2);
  close(r.purchase, 0.1);
  assert.equal(engagementRates({ clicks: 0, addToCart: 0, purchases: 0, listLength: 0 }), { click: 0, addToCart: 0, purchase: 0 });
  throwsCode(() => engagementRates({ clicks: Number.NaN, addToCart: 0, purchases: 0, listLength: 3 }), 'MINIELM_INVALID_ARGUMENT', /engagement\.clicks/);
});

test('combined reward is the normalised weighted sum; weights are configurable', () => {
  const c = { relevance: 1, diversity: 0, click: 0, addToCart: 0, purchase: 0 };
  const total = Object.values(DEFAULT_REWARD_WEIGHTS).reduce((a, b) => a + b, 0);
  close(combinedReward(c), DEFAULT_REWARD_WEIGHTS.relevance / total);
  close(combinedReward(c, { diversity: 0, click: 0, addToCart: 0, purchase: 0 }), 1);
  close(combinedReward({ relevance: 0.2, diversity: 1, click: 0, addToCart: 0, purchase: 0 }, { relevance: 1, diversity: 1, click: 0, addToCart: 0, purchase: 0 }), 0.6);
  const all = { relevance: 1, diversity: 1, click: 1, addToCart: 1, purchase: 1 };
  close(combinedReward(all), 1);
  throwsCode(() => combinedReward(c, { relevance: -1 }), 'MINIELM_INVALID_ARGUMENT', /weight "relevance"/);
  throwsCode(() => combinedReward(c, { relevance: 0, diversity: 0, click: 0, addToCart: 0, purchase: 0 }), 'MINIELM_INVALID_ARGUMENT', /all 0/);
  throwsCode(() => combinedReward({ ...c, diversity: Number.NaN }), 'MINIELM_INVALID_ARGUMENT', /component "diversity"/);
});

test('default weights: off-topic diversity does not beat a relevant copy of the original results', () => {
  // A: the same products as the original, all relevant. B: entirely new but irrelevant products.
  const a = combinedReward({ relevance: 0.8, diversity: 0, click: 0.2, addToCart: 0.1, purchase: 0.05 });
  const b = combinedReward({ relevance: 0, diversity: 1, click: 0.02, addToCart: 0, purchase: 0 });
  const c = combinedReward({ relevance: 0.8, diversity: 1, click: 0.2, addToCart: 0.1, purchase: 0.05 });
  assert.ok(a > b, `relevant copy ${a} should beat off-topic ${b}`);
  assert.ok(c > a, 'new AND relevant products beat a copy');
});

test('rewardComponents assembles the five components from raw inputs', () => {
  const comp = rewardComponents({
    relevanceScores: [1, 0],
    originalIds: ['a', 'b'],
    rewriteIds: ['a', 'c'],
    engagement: { clicks: 1, addToCart: 0.5, purchases: 0, listLength: 2 },
  });
  assert.equal(comp, { relevance: 0.5, diversity: 0.5, click: 0.5, addToCart: 0.25, purchase: 0 });
});

test('preferPair picks the higher reward and reports ties within tolerance', () => {
  assert.equal(preferPair(0.7, 0.3), { tie: false, chosen: 0, rejected: 1, margin: 0.7 - 0.3 });
  const p = preferPair(0.1, 0.4);
  assert.is(p.tie, false);
  if (!p.tie) assert.is(p.chosen, 1);
  assert.is(preferPair(0.5, 0.5).tie, true);
  assert.is(preferPair(0.5, 0.5 + 1e-9).tie, true);
  assert.is(preferPair(0.5, 0.6, 0.2).tie, true);
  throwsCode(() => preferPair(Number.NaN, 0.1), 'MINIELM_INVALID_ARGUMENT', /rewrite A/);
});

test.run();
