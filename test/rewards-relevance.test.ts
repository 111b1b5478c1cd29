import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CrossEncoderScorer,
  esciGain,
  homeDepotGain,
  JudgedLabelsScorer,
  LexicalOverlapScorer,
  lexicalOverlap,
  type RelevanceScorer,
} from '../lib/rewards/relevance.ts';
import type { ProductLike } from '../lib/rewards/types.ts';
import { MinielmError } from '../lib/errors.ts';

const product = (id: string, title: string, extra: Partial<ProductLike> = {}): ProductLike => ({ id, title, ...extra });

const labels = [
  { query: 'red shoes', productId: 'p1', gain: 1 },
  { query: 'red shoes', productId: 'p2', gain: 0.1 },
  { query: 'Garden Hose', productId: 'p3', gain: 0.5 },
];

test('judged labels: lookup by (normalised query, product id)', async () => {
  const s = new JudgedLabelsScorer(labels);
  assert.is(s.size, 3);
  const got = await s.scoreBatch([
    { query: '  Red   SHOES ', product: product('p1', 'x') },
    { query: 'red shoes', product: product('p2', 'x') },
    { query: 'garden hose', product: product('p3', 'x') },
  ]);
  assert.equal(got, [1, 0.1, 0.5]);
  assert.is(s.judged, 3);
  assert.is(s.unjudged, 0);
});

test('judged labels: repeated labels of one pair are averaged', async () => {
  const s = new JudgedLabelsScorer([...labels, { query: 'red shoes', productId: 'p1', gain: 0 }]);
  assert.equal(await s.scoreBatch([{ query: 'red shoes', product: product('p1', 'x') }]), [0.5]);
});

test('judged labels: unjudged pairs throw by default, naming the pair', async () => {
  const s = new JudgedLabelsScorer(labels);
  try {
    await s.scoreBatch([{ query: 'red shoes', product: product('p9', 'x') }]);
    assert.unreachable('should throw');
  } catch (err) {
    assert.instance(err, MinielmError);
    assert.is((err as MinielmError).code, 'MINIELM_NOT_FOUND');
    assert.match((err as Error).message, /"red shoes".*"p9".*fallback/);
  }
});

test('judged labels: a numeric fallback is used for unjudged pairs and counted', async () => {
  const s = new JudgedLabelsScorer(labels, { fallback: 0.25 });
  const got = await s.scoreBatch([
    { query: 'red shoes', product: product('p1', 'x') },
    { query: 'red shoes', product: product('p9', 'x') },
  ]);
  assert.equal(got, [1, 0.25]);
  assert.is(s.judged, 1);
  assert.is(s.unjudged, 1);
});

test('judged labels: a scorer fallback receives only the unjudged pairs, in one batch', async () => {
  const calls: string[][] = [];
  const delegate: RelevanceScorer = {
    async scoreBatch(pairs) {
      calls.push(pairs.map((p) => p.product.id));
      return pairs.map(() => 0.7);
    },
  };
  const s = new JudgedLabelsScorer(labels, { fallback: delegate });
  const got = await s.scoreBatch([
    { query: 'red shoes', product: product('p8', 'x') },
    { query: 'red shoes', product: product('p1', 'x') },
    { query: 'garden hose', product: product('p9', 'x') },
  ]);
  assert.equal(got, [0.7, 1, 0.7]);
  assert.equal(calls, [['p8', 'p9']]);
});

test('judged labels: bad gains and bad fallbacks are rejected', () => {
  assert.throws(() => new JudgedLabelsScorer([{ query: 'q', productId: 'p', gain: 2 }]), /gain 2.*\[0, 1\]/);
  assert.throws(() => new JudgedLabelsScorer([{ query: 'q', productId: 'p', gain: Number.NaN }]), /NaN/);
  assert.throws(() => new JudgedLabelsScorer([], { fallback: -0.5 }), /fallback/);
});

test('label conversions: ESCI and Home Depot', () => {
  assert.is(esciGain('E'), 1);
  assert.is(esciGain('exact'), 1);
  assert.is(esciGain('S'), 0.1);
  assert.is(esciGain('I'), 0);
  assert.throws(() => esciGain('X'), /E, S, C, I/);
  assert.is(homeDepotGain(3), 1);
  assert.is(homeDepotGain(1), 0);
  assert.ok(Math.abs(homeDepotGain(2.33) - 0.665) < 1e-12);
  assert.throws(() => homeDepotGain(4), /\[1, 3\]/);
});

test('lexical overlap: fraction of query tokens found in title, brand and colour', async () => {
  assert.is(lexicalOverlap('red running shoes', product('a', 'Running Shoe', { color: 'Red' })), 1);
  assert.is(lexicalOverlap('red running shoes', product('a', 'Running shorts')), 1 / 3);
  assert.is(lexicalOverlap('', product('a', 'x')), 0);
  const got = await new LexicalOverlapScorer().scoreBatch([{ query: 'garden hose', product: product('h', 'Garden Hose 50ft') }]);
  assert.equal(got, [1]);
});

test('cross-encoder: a missing folder is a clear error', async () => {
  try {
    await CrossEncoderScorer.load('/nonexistent/cross-encoder');
    assert.unreachable('should throw');
  } catch (err) {
    assert.is((err as MinielmError).code, 'MINIELM_NOT_FOUND');
    assert.match((err as Error).message, /\/nonexistent\/cross-encoder/);
  }
});

const folder = process.env.MINIELM_CROSS_ENCODER;
if (!folder) {
  console.warn('SKIPPED: cross-encoder scoring test — set MINIELM_CROSS_ENCODER to a local ONNX cross-encoder folder to run it.');
  test.skip('cross-encoder scores relevant pairs above irrelevant ones (needs MINIELM_CROSS_ENCODER)', () => {});
} else {
  test('cross-encoder scores relevant pairs above irrelevant ones, offline', async () => {
    const scorer = await CrossEncoderScorer.load(folder, { batchSize: 2 });
    const q = 'stainless steel kitchen sink';
    const scores = await scorer.scoreBatch([
      { query: q, product: product('a', 'Undermount stainless steel kitchen sink, single bowl') },
      { query: q, product: product('b', 'Wool winter hat with pompom') },
      { query: q, product: product('c', 'Double bowl stainless kitchen sink 33 inch') },
    ]);
    assert.is(scores.length, 3);
    for (const s of scores) assert.ok(s >= 0 && s <= 1 && Number.isFinite(s), `score ${s} outside [0, 1]`);
    assert.ok(scores[0] > scores[1] && scores[2] > scores[1], `expected sinks above the hat: ${scores.join(', ')}`);
  });
}

test.run();
