import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EmbeddedJudge } from '../lib/users/embedded-judge.ts';
import { generateProfiles, type UserProfile } from '../lib/users/profiles.ts';
import type { Product } from '../lib/data/types.ts';
import type { RelevanceScorer } from '../lib/rewards/relevance.ts';

const base: UserProfile = {
  id: 'u-base',
  gender: 'female',
  ageBand: '26-35',
  region: 'Europe',
  income: 'middle',
  priceSensitivity: 0.5,
  brandAffinity: 0.5,
  likedBrands: [],
  styles: [],
  colors: [],
  materials: [],
};

const list = (n: number, title: (i: number) => string, extra: (i: number) => Partial<Product> = () => ({})): Product[] =>
  Array.from({ length: n }, (_, i) => ({ id: `p${i}`, title: title(i), ...extra(i) }));

const total = (e: { clicks: number; addToCart: number; purchases: number }): number => e.clicks + e.addToCart + e.purchases;

test('a relevant list earns more clicks, carts and purchases than an irrelevant one', async () => {
  const judge = new EmbeddedJudge({ seed: 1 });
  const products = list(10, (i) => `item ${i}`);
  const [good, bad] = await judge.judgeBatch([
    { profile: base, query: 'q', products, relevance: products.map(() => 1) },
    { profile: base, query: 'q', products, relevance: products.map(() => 0) },
  ]);
  assert.ok(good.clicks > 3 * bad.clicks, `clicks ${good.clicks} vs ${bad.clicks}`);
  assert.ok(good.addToCart > bad.addToCart && good.purchases > bad.purchases);
  assert.is(good.listLength, 10);
});

test('without given relevance, the lexical fallback still separates matching from off-topic titles', async () => {
  const judge = new EmbeddedJudge({ seed: 1 });
  const [match, off] = await judge.judgeBatch([
    { profile: base, query: 'garden hose', products: list(10, (i) => `Garden hose ${i * 10} ft`) },
    { profile: base, query: 'garden hose', products: list(10, (i) => `Wool scarf model ${i}`) },
  ]);
  assert.ok(match.clicks > 3 * off.clicks, `${match.clicks} vs ${off.clicks}`);
});

test('a custom relevance scorer is called once per batch for requests without relevance', async () => {
  let calls = 0;
  let pairs = 0;
  const scorer: RelevanceScorer = {
    async scoreBatch(p) {
      calls++;
      pairs += p.length;
      return p.map(() => 0.5);
    },
  };
  const judge = new EmbeddedJudge({ relevanceScorer: scorer });
  const products = list(4, (i) => `x${i}`);
  await judge.judgeBatch([
    { profile: base, query: 'a', products },
    { profile: base, query: 'b', products, relevance: [1, 1, 1, 1] },
    { profile: base, query: 'c', products },
  ]);
  assert.is(calls, 1);
  assert.is(pairs, 8);
});

test('earlier positions matter more: relevant products moved to the top earn more clicks', async () => {
  const judge = new EmbeddedJudge({ seed: 3 });
  const products = list(10, (i) => `item ${i}`);
  const relevantFirst = products.map((_, i) => (i < 3 ? 1 : 0));
  const relevantLast = products.map((_, i) => (i >= 7 ? 1 : 0));
  // Same products, same per-product relevance: only the order changes.
  const reordered = [...products.slice(7), ...products.slice(0, 7)];
  const [top, bottom] = await judge.judgeBatch([
    { profile: base, query: 'q', products: reordered, relevance: reordered.map((p) => relevantLast[Number(p.id.slice(1))]) },
    { profile: base, query: 'q', products, relevance: relevantLast },
  ]);
  assert.ok(top.clicks > bottom.clicks * 1.5, `top ${top.clicks} vs bottom ${bottom.clicks}`);
  assert.ok(top.purchases > bottom.purchases);
  const [first] = await judge.judgeBatch([{ profile: base, query: 'q', products, relevance: relevantFirst }]);
  assert.ok(first.clicks > bottom.clicks);
});

test('examination decay 0 makes order irrelevant (the position effect comes from the decay)', async () => {
  const judge = new EmbeddedJudge({ seed: 3, parameters: { examinationDecay: 0 } });
  const products = list(6, (i) => `item ${i}`);
  const rel = [1, 1, 0, 0, 0, 0];
  const rev = [...products].reverse();
  const [a, b] = await judge.judgeBatch([
    { profile: base, query: 'q', products, relevance: rel },
    { profile: base, query: 'q', products: rev, relevance: [...rel].reverse() },
  ]);
  assert.ok(Math.abs(a.clicks - b.clicks) < 1e-12, `${a.clicks} vs ${b.clicks}`);
});

test('different profiles react differently: liked brand, colour and style raise engagement', async () => {
  const judge = new EmbeddedJudge({ seed: 5, parameters: { tasteNoise: 0 } });
  const products = list(10, (i) => `Vintage leather jacket ${i}`, () => ({ brand: 'Northwind', color: 'brown', price: 120 }));
  const fan: UserProfile = { ...base, id: 'fan', brandAffinity: 0.9, likedBrands: ['Northwind'], colors: ['brown'], styles: ['vintage'], materials: ['leather'] };
  const other: UserProfile = { ...base, id: 'other', brandAffinity: 0.9, likedBrands: ['Globex'], colors: ['pink'], styles: ['sporty'], materials: ['linen'] };
  const relevance = products.map(() => 0.6);
  const [a, b] = await judge.judgeBatch([
    { profile: fan, query: 'jacket', products, relevance },
    { profile: other, query: 'jacket', products, relevance },
  ]);
  assert.ok(a.clicks > b.clicks && a.addToCart > b.addToCart && a.purchases > b.purchases, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
});

test('price-sensitive low-income users buy less of an expensive list than luxury users; the cheap list reverses it', async () => {
  const judge = new EmbeddedJudge({ seed: 5, parameters: { tasteNoise: 0 } });
  const frugal: UserProfile = { ...base, id: 'frugal', income: 'low', priceSensitivity: 0.95 };
  const lavish: UserProfile = { ...base, id: 'lavish', income: 'luxury', priceSensitivity: 0.05 };
  // Expensive products first, cheap ones last, in the same list.
  const products = list(10, (i) => `lamp ${i}`, (i) => ({ price: i < 5 ? 400 : 20 }));
  const relevance = products.map(() => 1);
  const explainF = await judge.explain({ profile: frugal, query: 'lamp', products, relevance });
  const explainL = await judge.explain({ profile: lavish, query: 'lamp', products, relevance });
  // On the dear product (rank 0) the frugal user is less likely to buy; on the cheap one (rank 5) more likely.
  assert.ok(explainF.positions[0].purchaseGivenCart < explainL.positions[0].purchaseGivenCart);
  assert.ok(explainF.positions[5].purchaseGivenCart > explainL.positions[5].purchaseGivenCart);
});

test('whole pools differ: two random profiles rarely give identical engagement', async () => {
  const judge = new EmbeddedJudge({ seed: 9 });
  const pool = generateProfiles(20, 11);
  const products = list(10, (i) => `product ${i}`, (i) => ({ price: 10 + i * 7 }));
  const out = await judge.judgeBatch(pool.map((profile) => ({ profile, query: 'q', products, relevance: products.map(() => 0.7) })));
  assert.ok(new Set(out.map((e) => e.clicks.toFixed(9))).size >= 18);
});

test('same seed gives the same output; another seed changes it (taste term)', async () => {
  const products = list(10, (i) => `thing ${i}`);
  const req = [{ profile: base, query: 'thing', products, relevance: products.map((_, i) => (i % 2 ? 0.9 : 0.2)) }];
  const a = await new EmbeddedJudge({ seed: 42 }).judgeBatch(req);
  const b = await new EmbeddedJudge({ seed: 42 }).judgeBatch(req);
  const c = await new EmbeddedJudge({ seed: 43 }).judgeBatch(req);
  assert.equal(a, b);
  assert.not.equal(a, c);
});

test('expected counts respect the funnel and the list length; empty list gives zeros', async () => {
  const judge = new EmbeddedJudge({ seed: 1 });
  const pool = generateProfiles(30, 2);
  const products = list(10, (i) => `thing ${i}`, (i) => ({ price: 5 + i }));
  const out = await judge.judgeBatch(pool.map((profile, k) => ({ profile, query: 'thing', products, relevance: products.map((_, i) => ((i + k) % 3) / 2) })));
  for (const e of out) {
    assert.ok(e.clicks >= e.addToCart && e.addToCart >= e.purchases && e.purchases >= 0);
    assert.ok(e.clicks <= 10);
  }
  const [empty] = await judge.judgeBatch([{ profile: base, query: 'q', products: [] }]);
  assert.equal(empty, { clicks: 0, addToCart: 0, purchases: 0, listLength: 0 });
});

test('bad requests and parameters are rejected with the field named', async () => {
  const judge = new EmbeddedJudge();
  const products = list(2, (i) => `t${i}`);
  try {
    await judge.judgeBatch([{ profile: base, query: 'q', products, relevance: [1] }]);
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /judge request 0\.relevance.*\(2\)/);
  }
  try {
    await judge.judgeBatch([{ profile: base, query: 'q', products, relevance: [1, Number.NaN] }]);
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /relevance\[1\]/);
  }
  assert.throws(() => new EmbeddedJudge({ parameters: { clickBias: Number.NaN } }), /clickBias/);
  assert.throws(() => new EmbeddedJudge({ parameters: { examinationDecay: -1 } }), /examinationDecay/);
});

test.run();
