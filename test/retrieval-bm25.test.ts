import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Bm25Retriever, analyze, minimalStem, ndcgAt, type Product } from '../lib/retrieval/index.ts';

// Tiny corpus scored by hand. Title lengths (no stemming): 2, 4, 2 -> N = 3, avgdl = 8/3.
const corpus: Product[] = [
  { id: 'a', title: 'red drill' },
  { id: 'b', title: 'cordless drill drill kit' },
  { id: 'c', title: 'red hammer' },
];
const close = (actual: number, expected: number, what: string) =>
  assert.ok(Math.abs(actual - expected) < 1e-12, `${what}: got ${actual}, expected ${expected}`);

test('BM25 scores equal the Lucene formula computed by hand (k1 = 1.2, b = 0.75)', async () => {
  const bm25 = new Bm25Retriever({ stem: 'none' });
  await bm25.index(corpus);
  // "drill": n = 2 -> idf = ln(1 + (3 - 2 + 0.5) / (2 + 0.5)) = ln(1.6).
  // a: tf 1, len 2: 2.2 / (1 + 1.2 * (0.25 + 0.75 * 2 / (8/3))) = 2.2 / 1.975
  // b: tf 2, len 4: 4.4 / (2 + 1.2 * (0.25 + 0.75 * 4 / (8/3))) = 4.4 / 3.65
  const hits = bm25.searchOne('drill', 10);
  assert.equal(hits.map((h) => h.id), ['b', 'a']);
  close(hits[0].score, Math.log(1.6) * (4.4 / 3.65), 'score of b');
  close(hits[1].score, Math.log(1.6) * (2.2 / 1.975), 'score of a');
  // Fixed literals (computed independently): ln(1.6) * 4.4/3.65 and ln(1.6) * 2.2/1.975.
  close(hits[0].score, 0.5665797174469143, 'b literal');
  // "red drill" on a: both terms have n = 2, tf = 1, len 2 -> twice the single-term score.
  const [top] = bm25.searchOne('red drill', 1);
  assert.is(top.id, 'a');
  close(top.score, 2 * Math.log(1.6) * (2.2 / 1.975), 'red drill on a');
  // "kit": n = 1 -> idf = ln(1 + 2.5 / 1.5); only b matches.
  const kit = bm25.searchOne('KIT', 5);
  assert.equal(kit.map((h) => h.id), ['b']);
  close(kit[0].score, Math.log(1 + 2.5 / 1.5) * (2.2 / (1 + 1.2 * (0.25 + 0.75 * 4 / (8 / 3)))), 'kit on b');
  // scoreProducts agrees with search and gives 0 for non-matching products.
  const scored = bm25.scoreProducts('drill', ['a', 'b', 'c']);
  close(scored[0], hits[1].score, 'scoreProducts a');
  close(scored[1], hits[0].score, 'scoreProducts b');
  assert.is(scored[2], 0);
});

test('weighted fields: per-field N and avgdl, weights multiply the field score', async () => {
  const products: Product[] = [
    { id: 'p1', title: 'drill', brand: 'makita' },
    { id: 'p2', title: 'makita drill bits' },
    { id: 'p3', title: 'saw', brand: 'dewalt' },
  ];
  const bm25 = new Bm25Retriever({ stem: 'none', fields: { title: 1, brand: 2 } });
  await bm25.index(products);
  assert.equal(bm25.fieldStats('brand'), { docCount: 2, avgLength: 1, weight: 2 });
  // title: N = 3, avgdl = 5/3; brand: N = 2 (p2 has no brand), avgdl = 1.
  const titleIdf = Math.log(1 + (3 - 1 + 0.5) / 1.5);
  const brandIdf = Math.log(1 + (2 - 1 + 0.5) / 1.5);
  const p1 = 2 * brandIdf * (2.2 / (1 + 1.2 * (0.25 + 0.75 * 1 / 1)));
  const p2 = titleIdf * (2.2 / (1 + 1.2 * (0.25 + (0.75 * 3) / (5 / 3))));
  const hits = bm25.searchOne('makita', 3);
  assert.equal(hits.map((h) => h.id), p1 > p2 ? ['p1', 'p2'] : ['p2', 'p1']);
  close(hits.find((h) => h.id === 'p1')!.score, p1, 'brand-only match');
  close(hits.find((h) => h.id === 'p2')!.score, p2, 'title-only match');
});

test('a repeated query term counts once per occurrence', async () => {
  const bm25 = new Bm25Retriever({ stem: 'none' });
  await bm25.index(corpus);
  close(bm25.searchOne('drill drill', 1)[0].score, 2 * bm25.searchOne('drill', 1)[0].score, 'drill drill');
});

test('ties are broken by index order, the same way every time and in batches', async () => {
  const products: Product[] = [];
  for (let i = 0; i < 40; i++) products.push({ id: `same-${i}`, title: 'white ceiling fan' });
  products.push({ id: 'other', title: 'black ceiling fan with light' });
  const bm25 = new Bm25Retriever();
  await bm25.index(products);
  const first = bm25.searchOne('ceiling fan', 5).map((h) => h.id);
  assert.equal(first, ['same-0', 'same-1', 'same-2', 'same-3', 'same-4']);
  const batch = await bm25.search(['ceiling fan', 'ceiling fan', 'nothing matches this'], 5);
  assert.equal(batch, [first, first, []]);
  // A shorter title scores higher than the longer one for the same matched terms, so "other" comes last.
  const all = bm25.searchOne('ceiling fan', 100);
  assert.is(all.length, 41);
  assert.is(all[40].id, 'other');
  for (let i = 1; i < all.length; i++) assert.ok(all[i - 1].score >= all[i].score, 'scores are sorted');
});

test('top-k equals a full sort of every matching product', async () => {
  const words = ['drill', 'saw', 'bit', 'cordless', 'red', 'blue', 'kit', 'blade', 'steel', 'wood'];
  const products: Product[] = [];
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = 0; i < 500; i++) {
    const n = 1 + Math.floor(rand() * 6);
    products.push({ id: `p${i}`, title: Array.from({ length: n }, () => words[Math.floor(rand() * words.length)]).join(' ') });
  }
  const bm25 = new Bm25Retriever({ stem: 'none' });
  await bm25.index(products);
  for (const q of ['drill', 'red saw', 'cordless drill kit', 'steel wood blade bit']) {
    const ids = products.map((p) => p.id);
    const scores = bm25.scoreProducts(q, ids);
    const expected = ids
      .map((id, i) => ({ id, score: scores[i], i }))
      .filter((x) => x.score > 0)
      .sort((x, y) => y.score - x.score || x.i - y.i)
      .slice(0, 10)
      .map((x) => x.id);
    assert.equal(bm25.searchOne(q, 10).map((h) => h.id), expected, q);
  }
});

test('analyzer: lowercase, unicode terms, numbers kept whole, minimal plural stemming', () => {
  assert.equal(analyze('3/4 in. Cordless DRILLS 1.9 cu. ft.', { stem: 'minimal' }), ['3', '4', 'in', 'cordless', 'drill', '1.9', 'cu', 'ft']);
  assert.equal(analyze('Café Crème — Ｆｕｌｌwidth 😀 x', { stem: 'none' }), ['café', 'crème', 'fullwidth', 'x']);
  assert.equal(analyze("Don't 12-Gauge", { stem: 'none' }), ["don't", '12', 'gauge']);
  assert.equal(analyze(''), []);
  const cases: [string, string][] = [['batteries', 'battery'], ['drills', 'drill'], ['glass', 'glass'], ['bus', 'bus'], ['shoes', 'shoes'], ['boxes', 'boxe'], ['is', 'is'], ['series', 'sery']];
  for (const [word, stem] of cases) assert.is(minimalStem(word), stem, word);
});

test('errors name the problem', async () => {
  const bm25 = new Bm25Retriever();
  try {
    await bm25.index([{ id: 'x', title: 'a' }, { id: 'x', title: 'b' }]);
    assert.unreachable('duplicate ids accepted');
  } catch (err) {
    assert.is((err as { code?: string }).code, 'MINIELM_INVALID_ARGUMENT');
    assert.match((err as Error).message, /"x" appears twice/);
  }
  await bm25.index(corpus);
  assert.throws(() => bm25.searchOne('drill', 0), /positive integer/);
  assert.throws(() => bm25.scoreProducts('drill', ['zz']), /"zz" is not in the BM25 index/);
  assert.throws(() => new Bm25Retriever({ fields: { title: 1, price: 2 } as never }), /unknown BM25 field "price"/);
});

test('ndcgAt: hand-computed values', () => {
  const gains = new Map([['a', 1], ['b', 0.5], ['c', 0]]);
  const idcg = 1 + 0.5 / Math.log2(3);
  close(ndcgAt(['a', 'b', 'c'], gains, 10), 1, 'ideal');
  close(ndcgAt(['b', 'a'], gains, 10), (0.5 + 1 / Math.log2(3)) / idcg, 'swapped');
  close(ndcgAt(['x', 'a'], gains, 1), 0, 'cut at 1');
  assert.ok(Number.isNaN(ndcgAt(['a'], new Map([['a', 0]]), 10)), 'no positive gain -> NaN');
});

test.run();
