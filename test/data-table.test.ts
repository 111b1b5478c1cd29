// Relevance-table loader: column and label maps, encodings, malformed rows, and the real Home Depot file.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import iconv from 'iconv-lite';
import { CROWDFLOWER_LABELS, HOMEDEPOT_LABELS, TABLE_PRESETS, applyLabelMap, judgedQueries, loadRelevanceTable } from '../lib/data/index.ts';
import type { Judgement } from '../lib/data/index.ts';
import { MinielmError } from '../lib/errors.ts';
import { readHomeDepot } from '../lib/retrieval/homedepot.ts';
import { testIf } from './helpers/skip.ts';

const dir = mkdtempSync(join(tmpdir(), 'minielm-table-'));
const HOMEDEPOT = join(process.cwd(), '..', 'shared', 'data', 'homedepot', 'train.csv');
const CROWDFLOWER = join(process.cwd(), '..', 'shared', 'data', 'crowdflower', 'train.csv');

test('Home Depot label map: gain = (r - 1) / 2 and documented thresholds', () => {
  const at = (r: string) => applyLabelMap(HOMEDEPOT_LABELS, r);
  assert.equal(at('3'), { label: 'E', gain: 1 });
  assert.equal(at('2.5'), { label: 'E', gain: 0.75 });
  assert.equal(at('2.33'), { label: 'S', gain: (2.33 - 1) / 2 });
  assert.equal(at('2'), { label: 'S', gain: 0.5 });
  assert.equal(at('1.67'), { label: 'C', gain: (1.67 - 1) / 2 });
  assert.equal(at('1.33'), { label: 'I', gain: (1.33 - 1) / 2 });
  assert.equal(at('1'), { label: 'I', gain: 0 });
  assert.type(at('4'), 'string');
  assert.type(at('abc'), 'string');
  assert.equal(applyLabelMap(CROWDFLOWER_LABELS, '3'), { label: 'S', gain: 2 / 3 });
});

test('latin-1 CSV with a column map; malformed rows counted with line numbers', async () => {
  const csv = [
    '"id","product_uid","product_title","search_term","relevance"',
    '1,100,"Café table, 30° tilt","cafe table",3', // line 2: latin-1 é and °
    '2,100,"Café table, 30° tilt","bistro table",2.33',
    '3,101,"Plain chair","",2', // line 4: empty query
    '4,102,"Lamp","desk lamp",abc', // line 5: bad label
    '5,103,"Mug","mug"', // line 6: too few fields
    '6,104,"Multi',
    'line title","rug",1.67', // a quoted field over lines 7-8: fine
  ].join('\r\n');
  const path = join(dir, 'hd.csv');
  writeFileSync(path, iconv.encode(csv, 'latin1'));
  const d = await loadRelevanceTable({ path, ...TABLE_PRESETS.homedepot!, labels: HOMEDEPOT_LABELS });
  assert.equal(d.products.get('100')?.title, 'Café table, 30° tilt');
  assert.equal(d.judgements.map((j) => [j.query, j.productId, j.label]), [
    ['cafe table', '100', 'E'],
    ['bistro table', '100', 'S'],
    ['rug', '104', 'C'],
  ]);
  assert.equal(d.products.get('104')?.title, 'Multi\r\nline title');
  assert.equal(d.report.rowsRead, 6);
  assert.equal(d.report.rowsKept, 3);
  assert.equal(d.report.malformed, 3);
  assert.equal(d.report.malformedExamples.map((m) => m.line), [4, 5, 6]);
  assert.match(d.report.malformedExamples[1]?.reason ?? '', '"relevance"');
  assert.match(d.report.malformedExamples[2]?.reason ?? '', '4 fields, header has 5');
});

test('reading the same latin-1 bytes as utf-8 gives different text (the encoding matters)', async () => {
  const path = join(dir, 'enc.csv');
  writeFileSync(path, iconv.encode('query,product_id,title,label\nnaïve,1,Crème,E\n', 'latin1'));
  const latin = await loadRelevanceTable({ path, columns: { query: 'query', productId: 'product_id', title: 'title', label: 'label' }, labels: { kind: 'esci' }, encoding: 'latin1' });
  const utf8 = await loadRelevanceTable({ path, columns: { query: 'query', productId: 'product_id', title: 'title', label: 'label' }, labels: { kind: 'esci' } });
  assert.equal(latin.judgements[0]?.query, 'naïve');
  assert.is.not(utf8.judgements[0]?.query, 'naïve');
});

test('JSONL with a categorical label map and no product id column', async () => {
  const path = join(dir, 't.jsonl');
  writeFileSync(path, [
    JSON.stringify({ q: 'red mug', t: 'Red Mug', grade: 'perfect' }),
    '{not json',
    JSON.stringify({ q: 'red mug', t: 'Blue Mug', grade: 'partial' }),
    '',
    JSON.stringify({ q: 'red mug', t: 'Mug Rack', grade: 'unknown-grade' }),
  ].join('\n'));
  const d = await loadRelevanceTable({
    path,
    columns: { query: 'q', title: 't', label: 'grade' },
    labels: { kind: 'categorical', table: { perfect: { label: 'E', gain: 1 }, partial: { label: 'S', gain: 0.5 } } },
  });
  assert.equal(d.judgements.map((j) => [j.productId, j.label, j.gain]), [['Red Mug', 'E', 1], ['Blue Mug', 'S', 0.5]]);
  assert.equal(d.report.malformed, 2);
  assert.equal(d.report.malformedExamples.map((m) => m.line), [2, 5]);
});

test('a missing column names the file, the column and the flag', async () => {
  const path = join(dir, 'cols.csv');
  writeFileSync(path, 'query,pid,label\na,1,E\n');
  try {
    await loadRelevanceTable({ path, columns: { query: 'query', productId: 'product_id', label: 'label' }, labels: { kind: 'esci' } });
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.instance(err, MinielmError);
    assert.equal((err as MinielmError).code, 'MINIELM_BAD_FILE');
    assert.match((err as Error).message, path);
    assert.match((err as Error).message, '"product_id"');
    assert.match((err as Error).message, '--product-id-column');
  }
});

test('judgedQueries groups by query in first-seen order, on the source scale, averaging a repeated pair', () => {
  const j = (query: string, productId: string, r: number): Judgement => ({ query, productId, label: 'E', gain: (r - 1) / 2 });
  const judgements = [j('b', 'p1', 3), j('a', 'p2', 2.33), j('b', 'p3', 1), j('b', 'p1', 2), j('b', 'p1', 2.5), j('a', 'p1', 1.67)];
  const grouped = judgedQueries(judgements, HOMEDEPOT_LABELS);
  assert.equal(grouped.map((q) => [q.query, [...q.judgements]]), [
    ['b', [['p1', 2.5], ['p3', 1]]],
    ['a', [['p2', 2.33], ['p1', 1.67]]],
  ]);
  // No graded map: the gains themselves.
  assert.equal([...judgedQueries(judgements)[1].judgements], [['p2', (2.33 - 1) / 2], ['p1', (1.67 - 1) / 2]]);
});

test('readHomeDepot is the table loader with the homedepot preset: latin-1, quoted commas, rows in file order', async () => {
  const csv = [
    '"id","product_uid","product_title","search_term","relevance"',
    '1,100,"Café table, 30° tilt","cafe table",3',
    '2,101,"Plain chair","chair",1.33',
    '3,100,"Café table, 30° tilt","bistro table",2.33',
    '4,102,"Lamp","cafe table",2.67',
  ].join('\r\n');
  const path = join(dir, 'hd-reader.csv');
  writeFileSync(path, iconv.encode(csv, 'latin1'));
  const hd = await readHomeDepot(path);
  assert.equal(hd.products, [{ id: '100', title: 'Café table, 30° tilt' }, { id: '101', title: 'Plain chair' }, { id: '102', title: 'Lamp' }]);
  assert.equal(hd.queries.map((q) => [q.query, [...q.judgements]]), [
    ['cafe table', [['100', 3], ['102', 2.67]]],
    ['chair', [['101', 1.33]]],
    ['bistro table', [['100', 2.33]]],
  ]);
});

test('readHomeDepot refuses a file with an unusable row (line, reason) and a missing file', async () => {
  const path = join(dir, 'hd-bad.csv');
  writeFileSync(path, 'id,product_uid,product_title,search_term,relevance\n1,100,Lamp,lamp,3\n2,101,Mug,mug,4\n');
  try {
    await readHomeDepot(path);
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.instance(err, MinielmError);
    assert.equal((err as MinielmError).code, 'MINIELM_BAD_FILE');
    assert.match((err as Error).message, `${path} line 3`);
    assert.match((err as Error).message, 'outside [1, 3]');
  }
  try {
    await readHomeDepot(join(dir, 'absent.csv'));
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.equal((err as MinielmError).code, 'MINIELM_NOT_FOUND');
  }
});

testIf(test, existsSync(HOMEDEPOT), 'Home Depot train.csv (real data)', `${HOMEDEPOT} is absent; the Home Depot loader is NOT checked on real data`, async () => {
  const d = await loadRelevanceTable({ path: HOMEDEPOT, ...TABLE_PRESETS.homedepot!, labels: HOMEDEPOT_LABELS });
  assert.equal(d.report.rowsRead, 74_067);
  assert.equal(d.report.malformed, 0);
  assert.equal(d.judgements.length, 74_067);
  assert.equal(new Set(d.judgements.map((j) => j.query)).size, 11_795);
  assert.equal(d.products.size, 54_667);
  assert.equal(d.products.get('100001')?.title, 'Simpson Strong-Tie 12-Gauge Angle');
  for (const j of d.judgements) assert.ok(j.gain >= 0 && j.gain <= 1);
  const exact = d.judgements.filter((j) => j.label === 'E').length;
  assert.ok(exact > 30_000 && exact < 40_000, `E count ${exact}`);
  // latin-1 bytes decoded, no U+FFFD replacement characters
  assert.not.ok([...d.products.values()].some((p) => p.title.includes('\uFFFD')));
});

testIf(test, existsSync(CROWDFLOWER), 'CrowdFlower train.csv is readable (held out: nothing else is done with it)', `${CROWDFLOWER} is absent; the CrowdFlower file is NOT checked`, async () => {
  const d = await loadRelevanceTable({ path: CROWDFLOWER, ...TABLE_PRESETS.crowdflower!, labels: CROWDFLOWER_LABELS });
  assert.equal(d.report.rowsRead, 10_158);
  assert.equal(d.report.malformed, 0);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
