// ESCI loader: small parquet files with the official schema, written here and read back.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parquetWriteFile } from 'hyparquet-writer';
import type { SchemaElement } from 'hyparquet';
import { ESCI_GAIN, iterateEsciExamples, loadEsci } from '../lib/data/index.ts';
import { MinielmError } from '../lib/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'minielm-esci-'));
const str = (name: string): SchemaElement => ({ name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' });
const int = (name: string): SchemaElement => ({ name, type: 'INT64', repetition_type: 'OPTIONAL' });

const examples = [
  // example_id, query, query_id, product_id, locale, label, small, large, split
  [0, 'red shoes', 1, 'P1', 'us', 'E', 1, 1, 'train'],
  [1, 'red shoes', 1, 'P2', 'us', 'S', 1, 1, 'train'],
  [2, 'zapatos rojos', 2, 'P1', 'es', 'E', 1, 1, 'train'],
  [3, 'blue lamp', 3, 'P3', 'us', 'C', 0, 1, 'test'],
  [4, 'blue lamp', 3, 'P4', 'us', 'I', 0, 1, 'test'],
  [5, 'green mug', 4, 'P5', 'us', 'X', 0, 1, 'train'], // a bad label: counted, not dropped silently
] as const;

function writeExamples(path: string, rowGroupSize: number, drop?: string): void {
  const cols: Array<[SchemaElement, unknown[]]> = [
    [int('example_id'), examples.map((r) => BigInt(r[0]))],
    [str('query'), examples.map((r) => r[1])],
    [int('query_id'), examples.map((r) => BigInt(r[2]))],
    [str('product_id'), examples.map((r) => r[3])],
    [str('product_locale'), examples.map((r) => r[4])],
    [str('esci_label'), examples.map((r) => r[5])],
    [int('small_version'), examples.map((r) => BigInt(r[6]))],
    [int('large_version'), examples.map((r) => BigInt(r[7]))],
    [str('split'), examples.map((r) => r[8])],
  ];
  const kept = cols.filter(([s]) => s.name !== drop);
  parquetWriteFile({
    filename: path,
    schema: [{ name: 'schema', num_children: kept.length }, ...kept.map(([s]) => s)],
    columnData: kept.map(([s, data]) => ({ name: s.name, data })),
    rowGroupSize,
  });
}

const productsPath = join(dir, 'products.parquet');
parquetWriteFile({
  filename: productsPath,
  schema: [{ name: 'schema', num_children: 7 }, ...['product_id', 'product_title', 'product_description', 'product_bullet_point', 'product_brand', 'product_color', 'product_locale'].map(str)],
  columnData: [
    { name: 'product_id', data: ['P1', 'P2', 'P1', 'P3', 'P4', 'P9'] },
    { name: 'product_title', data: ['Red Running Shoe', 'Crimson Sneaker', 'Zapato Rojo', 'Blue Desk Lamp', 'Coffee Mug', 'Unjudged Thing'] },
    { name: 'product_description', data: ['Light shoe.', null, 'Zapato.', 'A lamp.', null, 'x'] },
    { name: 'product_bullet_point', data: ['Mesh upper\nRubber sole', 'Canvas', null, 'LED', null, 'x'] },
    { name: 'product_brand', data: ['Acme', 'Bolt', 'Acme', 'Lumo', null, 'x'] },
    { name: 'product_color', data: ['red', 'crimson', 'rojo', 'blue', 'white', 'x'] },
    { name: 'product_locale', data: ['us', 'us', 'es', 'us', 'us', 'us'] },
  ],
});

test('reads examples and products, keeps locale us and the official split', async () => {
  const path = join(dir, 'examples.parquet');
  writeExamples(path, 2); // several row groups, so the windowing is exercised
  const d = await loadEsci({ examplesPath: path, productsPath, windowRows: 1 });
  assert.equal(d.judgements.map((j) => [j.query, j.productId, j.label, j.split]), [
    ['red shoes', 'P1', 'E', 'train'],
    ['red shoes', 'P2', 'S', 'train'],
    ['blue lamp', 'P3', 'C', 'test'],
    ['blue lamp', 'P4', 'I', 'test'],
  ]);
  // The ESCI paper's NDCG gains (Reddy et al., 2022): E 1, S 0.1, C 0.01, I 0.
  assert.equal(d.judgements.map((j) => j.gain), [1, 0.1, 0.01, 0]);
  assert.equal({ ...ESCI_GAIN }, { E: 1, S: 0.1, C: 0.01, I: 0 });
  assert.equal(d.judgements[0]?.queryId, '1');
  assert.equal(d.split, ['test', 'train']);
  const p1 = d.products.get('P1');
  assert.equal(p1?.title, 'Red Running Shoe'); // the us row, not the es one
  assert.equal(p1?.brand, 'Acme');
  assert.equal(p1?.color, 'red');
  assert.equal(p1?.bullets, 'Mesh upper\nRubber sole');
  assert.equal(p1?.description, 'Light shoe.');
  assert.not.ok(d.products.has('P9'), 'unjudged products are left out by default');
  assert.equal(d.products.size, 4);
  const report = d.reports[0];
  assert.equal(report?.rowsRead, 6);
  assert.equal(report?.rowsFiltered, 1);
  assert.equal(report?.malformed, 1);
  assert.match(report?.malformedExamples[0]?.reason ?? '', /esci_label "X"/);
});

test('split, version and locale "all" filters', async () => {
  const path = join(dir, 'examples-one-group.parquet');
  writeExamples(path, 100);
  const train = await loadEsci({ examplesPath: path, split: 'train' });
  assert.equal(train.judgements.map((j) => j.productId), ['P1', 'P2']);
  const small = await loadEsci({ examplesPath: path, version: 'small', locale: 'all' });
  assert.equal(small.judgements.map((j) => j.productId), ['us/P1', 'us/P2', 'es/P1']);
  const all = await loadEsci({ examplesPath: path, productsPath, locale: 'all' });
  assert.equal(all.products.get('es/P1')?.title, 'Zapato Rojo');
  assert.equal(all.products.get('us/P1')?.title, 'Red Running Shoe');
});

test('streams batch by batch', async () => {
  const path = join(dir, 'examples-stream.parquet');
  writeExamples(path, 2);
  const sizes: number[] = [];
  for await (const batch of iterateEsciExamples({ examplesPath: path })) sizes.push(batch.length);
  assert.ok(sizes.length >= 2, `expected several batches, got ${sizes}`);
  assert.equal(sizes.reduce((a, b) => a + b, 0), 4);
});

test('a missing column names the file and the column', async () => {
  const path = join(dir, 'no-label.parquet');
  writeExamples(path, 100, 'esci_label');
  try {
    await loadEsci({ examplesPath: path });
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.instance(err, MinielmError);
    assert.equal((err as MinielmError).code, 'MINIELM_BAD_FILE');
    assert.match((err as Error).message, path);
    assert.match((err as Error).message, '"esci_label"');
  }
});

test('a column of the wrong type names the file and the column', async () => {
  const path = join(dir, 'bad-type.parquet');
  parquetWriteFile({
    filename: path,
    columnData: ['example_id', 'query', 'query_id', 'product_id', 'product_locale', 'esci_label', 'small_version', 'large_version', 'split']
      .map((name) => ({ name, data: name === 'query' ? [1, 2] : ['a', 'b'], type: name === 'query' ? 'INT32' as const : 'STRING' as const })),
  });
  try {
    await loadEsci({ examplesPath: path });
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.equal((err as MinielmError).code, 'MINIELM_BAD_FILE');
    assert.match((err as Error).message, path);
    assert.match((err as Error).message, '"query"');
  }
});

test('a file that is not parquet, and a missing file', async () => {
  const junk = join(dir, 'junk.parquet');
  writeFileSync(junk, 'this is not parquet at all');
  try {
    await loadEsci({ examplesPath: junk });
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.equal((err as MinielmError).code, 'MINIELM_BAD_FILE');
    assert.match((err as Error).message, junk);
  }
  try {
    await loadEsci({ examplesPath: join(dir, 'nope.parquet') });
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.equal((err as MinielmError).code, 'MINIELM_NOT_FOUND');
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
