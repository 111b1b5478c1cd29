// Synthetic catalog: seeded, says it is synthetic everywhere, labels follow attribute matches.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildQ2Q, generateSyntheticCatalog, labelFor, loadRelevanceTable, syntheticIntentFilter, writeSyntheticCatalog, type SyntheticIntent, type SyntheticProduct } from '../lib/data/index.ts';

const catalog = generateSyntheticCatalog({ seed: 5, products: 600, queries: 400 });

test('same seed gives identical output, another seed a different one', () => {
  const again = generateSyntheticCatalog({ seed: 5, products: 600, queries: 400 });
  assert.equal(JSON.stringify([...again.products.values()]), JSON.stringify([...catalog.products.values()]));
  assert.equal(again.queries, catalog.queries);
  assert.equal(again.judgements, catalog.judgements);
  const other = generateSyntheticCatalog({ seed: 6, products: 600, queries: 400 });
  assert.is.not(JSON.stringify(other.queries), JSON.stringify(catalog.queries));
});

test('sizes, and every object says it is synthetic', () => {
  assert.equal(catalog.products.size, 600);
  assert.equal(catalog.queries.length, 400);
  assert.equal(catalog.synthetic, true);
  assert.match(catalog.notice, 'SYNTHETIC');
  for (const p of catalog.products.values()) assert.equal(p.synthetic, true);
  for (const q of catalog.queries) assert.equal(q.synthetic, true);
  assert.equal(new Set(catalog.queries.map((q) => q.text)).size, 400, 'query texts are distinct');
});

// The labelling rule as docs/data.md states it, written here independently of lib/data/synthetic.ts:
// same category and every asked attribute (and the price ceiling, when there is one) matches -> E; one
// mismatch -> S; more -> I; a product of a complement category -> C; any other category -> I.
// Complement categories are part of the catalog's design (things bought together), listed here by hand.
const COMPLEMENT_PAIRS: [string, string][] = [
  ['sofa', 'throw pillow'], ['sofa', 'coffee table'], ['coffee table', 'area rug'], ['desk lamp', 'light bulb'],
  ['desk lamp', 'office desk'], ['office desk', 'office chair'], ['running shoes', 'athletic socks'],
  ['backpack', 'water bottle'], ['frying pan', 'spatula'], ['bath towel', 'bath mat'], ['garden hose', 'hose nozzle'],
];
// ESCI gains (Reddy et al., 2022, the Shopping Queries dataset paper): E 1, S 0.1, C 0.01, I 0.
const GAIN: Record<string, number> = { E: 1, S: 0.1, C: 0.01, I: 0 };

function expectedLabel(intent: SyntheticIntent, p: SyntheticProduct): string {
  if (p.category !== intent.category) {
    const complement = COMPLEMENT_PAIRS.some(([a, b]) => (a === intent.category && b === p.category) || (b === intent.category && a === p.category));
    return complement ? 'C' : 'I';
  }
  const fields = p as unknown as Record<string, unknown>;
  let misses = Object.entries(intent.attributes).filter(([a, v]) => fields[a] !== v).length;
  if (intent.maxPrice !== undefined && !(p.price <= intent.maxPrice)) misses++;
  return misses === 0 ? 'E' : misses === 1 ? 'S' : 'I';
}

test('labelFor on hand-made cases', () => {
  const sofa: SyntheticProduct = {
    id: 'x1', title: 'Acmeline Modern leather sofa in red, large', brand: 'Acmeline', color: 'red', material: 'leather', size: 'large',
    style: 'modern', price: 500, category: 'sofa', synthetic: true,
  };
  const cases: [SyntheticIntent, string][] = [
    [{ category: 'sofa', attributes: {} }, 'E'],
    [{ category: 'sofa', attributes: { color: 'red', brand: 'Acmeline', material: 'leather' } }, 'E'],
    [{ category: 'sofa', attributes: { color: 'red' }, maxPrice: 500 }, 'E'],
    [{ category: 'sofa', attributes: { color: 'navy' } }, 'S'],
    [{ category: 'sofa', attributes: { color: 'red', size: 'small' } }, 'S'],
    [{ category: 'sofa', attributes: { color: 'red' }, maxPrice: 400 }, 'S'],
    [{ category: 'sofa', attributes: { color: 'navy', style: 'rustic' } }, 'I'],
    [{ category: 'sofa', attributes: { color: 'navy' }, maxPrice: 400 }, 'I'],
    [{ category: 'throw pillow', attributes: { color: 'red' } }, 'C'],
    [{ category: 'coffee table', attributes: {} }, 'C'],
    [{ category: 'garden hose', attributes: { color: 'red' } }, 'I'],
    [{ category: 'office chair', attributes: { material: 'leather' } }, 'I'],
  ];
  for (const [intent, want] of cases) assert.is(labelFor(intent, sofa), want, JSON.stringify(intent));
});

test('labels are the attribute-match ground truth', () => {
  const byText = new Map(catalog.queries.map((q) => [q.text, q]));
  let checked = 0;
  const perLabel: Record<string, number> = { E: 0, S: 0, C: 0, I: 0 };
  for (const j of catalog.judgements) {
    const q = byText.get(j.query);
    const p = catalog.products.get(j.productId);
    assert.ok(q && p, `judgement ${j.query} / ${j.productId} refers to known ids`);
    assert.is(j.label, expectedLabel(q.intent, p), `${j.query} / ${p.title}`);
    assert.is(j.gain, GAIN[j.label], `gain of ${j.label}`);
    if (j.label === 'E') {
      assert.is(p.category, q.intent.category);
      for (const [a, v] of Object.entries(q.intent.attributes)) assert.is((p as unknown as Record<string, unknown>)[a], v);
    }
    perLabel[j.label]++;
    checked++;
  }
  assert.ok(checked > 1000);
  for (const [label, n] of Object.entries(perLabel)) assert.ok(n >= 20, `${n} judgements labelled ${label}`);
  assert.ok(catalog.queries.some((q) => q.intent.maxPrice !== undefined), 'some queries have a price ceiling');
});

test('queries use synonyms, typos, abbreviations and dropped words', () => {
  const seen = new Set(catalog.queries.flatMap((q) => q.transforms));
  for (const t of ['synonym', 'typo', 'abbreviation', 'drop']) assert.ok(seen.has(t), `no query with ${t}`);
});

test('default size gives enough Q2Q pairs, many of them true equivalents', async () => {
  const full = generateSyntheticCatalog();
  assert.equal(full.products.size, 2000);
  assert.equal(full.queries.length, 1500);
  const r = await buildQ2Q(full.judgements, { k: 2 });
  assert.ok(r.train.length >= 5000, `only ${r.train.length} train pairs`);
  const filtered = await buildQ2Q(full.judgements, { k: 2, filter: syntheticIntentFilter(full) });
  assert.ok(filtered.train.length >= 1000, `only ${filtered.train.length} same-intent train pairs`);
  const intent = new Map(full.queries.map((q) => [q.text, q.intentKey]));
  for (const p of filtered.train) assert.is(intent.get(p.query), intent.get(p.rewrite));
});

test('written files say synthetic and read back through the table loader', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'minielm-syn-'));
  try {
    await writeSyntheticCatalog(catalog, dir);
    assert.equal(readdirSync(dir).sort(), ['SYNTHETIC.txt', 'judgements.jsonl', 'manifest.json', 'products.jsonl', 'queries.jsonl']);
    assert.match(readFileSync(join(dir, 'SYNTHETIC.txt'), 'utf8'), 'SYNTHETIC DATA');
    assert.equal(JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')).synthetic, true);
    for (const f of ['judgements.jsonl', 'products.jsonl', 'queries.jsonl']) {
      for (const line of readFileSync(join(dir, f), 'utf8').trim().split('\n')) assert.equal(JSON.parse(line).synthetic, true, f);
    }
    const back = await loadRelevanceTable({ path: join(dir, 'judgements.jsonl'), columns: { query: 'query', productId: 'product_id', title: 'title', label: 'label' }, labels: { kind: 'esci' } });
    assert.equal(back.synthetic, true);
    assert.equal(back.judgements.length, catalog.judgements.length);
    assert.equal(back.report.malformed, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
