// Synthetic catalog: seeded, says it is synthetic everywhere, labels follow attribute matches.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildQ2Q, generateSyntheticCatalog, labelFor, loadRelevanceTable, syntheticIntentFilter, writeSyntheticCatalog } from '../lib/data/index.ts';

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

test('labels are the attribute-match ground truth', () => {
  const byText = new Map(catalog.queries.map((q) => [q.text, q]));
  let checked = 0;
  for (const j of catalog.judgements) {
    const q = byText.get(j.query);
    const p = catalog.products.get(j.productId);
    assert.ok(q && p, `judgement ${j.query} / ${j.productId} refers to known ids`);
    assert.is(j.label, labelFor(q.intent, p));
    if (j.label === 'E') {
      assert.is(p.category, q.intent.category);
      for (const [a, v] of Object.entries(q.intent.attributes)) assert.is((p as unknown as Record<string, unknown>)[a], v);
    }
    checked++;
  }
  assert.ok(checked > 1000);
  const labels = new Set(catalog.judgements.map((j) => j.label));
  assert.equal([...labels].sort(), ['C', 'E', 'I', 'S']);
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
