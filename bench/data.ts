// Full-size ESCI memory/time check: generates parquet files with the official schema and the official
// sizes (2,621,288 example rows, 1,814,924 products; invented text) and streams them through the loader.
//   node --import tsx bench/data.ts generate /tmp/esci-full   # once; writes ~1 GB, NOT into the repo
//   node --import tsx bench/data.ts load /tmp/esci-full       # prints time and peak RSS as JSON
// Use `/usr/bin/time -v` around "load" for an outside view of the same peak RSS.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ParquetWriter, fileWriter } from 'hyparquet-writer';
import type { SchemaElement } from 'hyparquet';
import { loadEsci } from '../lib/data/esci.ts';
import { createRng } from '../lib/data/random.ts';

const EXAMPLES = Number(process.env.ESCI_EXAMPLES ?? 2_621_288);
const PRODUCTS = Number(process.env.ESCI_PRODUCTS ?? 1_814_924);
const CHUNK = 100_000;

const str = (name: string): SchemaElement => ({ name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' });
const int = (name: string): SchemaElement => ({ name, type: 'INT64', repetition_type: 'OPTIONAL' });

const WORDS = 'cable charger phone case wireless mouse keyboard usb led light lamp desk chair office black white blue red steel wood pack set mini portable kitchen knife pan coffee mug water bottle bag travel kids toy game shoes women men shirt cotton size large small home garden tool drill battery power adapter hdmi screen protector glass'.split(' ');

function text(rng: () => number, words: number): string {
  const out: string[] = [];
  for (let i = 0; i < words; i++) out.push(WORDS[Math.floor(rng() * WORDS.length)] as string);
  return out.join(' ');
}

function localeOf(rng: () => number): string {
  const r = rng();
  return r < 0.7 ? 'us' : r < 0.85 ? 'es' : 'jp';
}

async function generate(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const rng = createRng(7);
  const started = Date.now();
  {
    const schema: SchemaElement[] = [
      { name: 'schema', num_children: 9 },
      int('example_id'), str('query'), int('query_id'), str('product_id'), str('product_locale'),
      str('esci_label'), int('small_version'), int('large_version'), str('split'),
    ];
    const writer = new ParquetWriter({ writer: fileWriter(join(dir, 'shopping_queries_dataset_examples.parquet')), schema });
    const labels = ['E', 'S', 'C', 'I'];
    for (let s = 0; s < EXAMPLES; s += CHUNK) {
      const n = Math.min(CHUNK, EXAMPLES - s);
      const cols = { example_id: [] as bigint[], query: [] as string[], query_id: [] as bigint[], product_id: [] as string[], product_locale: [] as string[], esci_label: [] as string[], small_version: [] as bigint[], large_version: [] as bigint[], split: [] as string[] };
      for (let i = 0; i < n; i++) {
        const row = s + i;
        const qid = Math.floor(row / 20); // ~20 judgements per query, like ESCI
        cols.example_id.push(BigInt(row));
        cols.query.push(`${text(rng, 2)} ${qid}`);
        cols.query_id.push(BigInt(qid));
        cols.product_id.push(`B${String(Math.floor(rng() * PRODUCTS)).padStart(9, '0')}`);
        cols.product_locale.push(localeOf(rng));
        cols.esci_label.push(labels[Math.floor(rng() * 4)] as string);
        cols.small_version.push(rng() < 0.45 ? 1n : 0n);
        cols.large_version.push(1n);
        cols.split.push(qid % 10 < 7 ? 'train' : 'test');
      }
      await writer.write({ columnData: Object.entries(cols).map(([name, data]) => ({ name, data })), rowGroupSize: CHUNK });
      process.stderr.write(`\rexamples: ${(s + n).toLocaleString('en-US')} / ${EXAMPLES.toLocaleString('en-US')}`);
    }
    await writer.finish();
    process.stderr.write('\n');
  }
  {
    const schema: SchemaElement[] = [
      { name: 'schema', num_children: 7 },
      str('product_id'), str('product_title'), str('product_description'), str('product_bullet_point'),
      str('product_brand'), str('product_color'), str('product_locale'),
    ];
    const writer = new ParquetWriter({ writer: fileWriter(join(dir, 'shopping_queries_dataset_products.parquet')), schema });
    for (let s = 0; s < PRODUCTS; s += CHUNK) {
      const n = Math.min(CHUNK, PRODUCTS - s);
      const cols = { product_id: [] as string[], product_title: [] as string[], product_description: [] as (string | null)[], product_bullet_point: [] as (string | null)[], product_brand: [] as string[], product_color: [] as string[], product_locale: [] as string[] };
      for (let i = 0; i < n; i++) {
        cols.product_id.push(`B${String(s + i).padStart(9, '0')}`);
        cols.product_title.push(text(rng, 12));
        cols.product_description.push(rng() < 0.5 ? text(rng, 60) : null); // ESCI leaves about half empty
        cols.product_bullet_point.push(rng() < 0.8 ? text(rng, 50) : null);
        cols.product_brand.push(text(rng, 1));
        cols.product_color.push(text(rng, 1));
        cols.product_locale.push(localeOf(rng));
      }
      await writer.write({ columnData: Object.entries(cols).map(([name, data]) => ({ name, data })), rowGroupSize: CHUNK });
      process.stderr.write(`\rproducts: ${(s + n).toLocaleString('en-US')} / ${PRODUCTS.toLocaleString('en-US')}`);
    }
    await writer.finish();
    process.stderr.write('\n');
  }
  console.log(JSON.stringify({ generated: dir, examples: EXAMPLES, products: PRODUCTS, seconds: (Date.now() - started) / 1000 }));
}

async function load(dir: string): Promise<void> {
  const started = Date.now();
  let last = 0;
  const data = await loadEsci({
    examplesPath: join(dir, 'shopping_queries_dataset_examples.parquet'),
    productsPath: join(dir, 'shopping_queries_dataset_products.parquet'),
    locale: 'us',
    productText: process.env.ESCI_TEXT !== '0',
    onProgress: (p) => {
      if (Date.now() - last > 2000) {
        last = Date.now();
        process.stderr.write(`${p.file}: ${p.rowsRead}/${p.rowsTotal} rows, ${p.rowsKept} kept, rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB\n`);
      }
    },
  });
  const seconds = (Date.now() - started) / 1000;
  console.log(JSON.stringify({
    'data.esci.load_s': seconds,
    'data.esci.peak_rss_mib': Math.round(process.resourceUsage().maxRSS / 1024),
    judgements: data.judgements.length,
    products: data.products.size,
    productText: process.env.ESCI_TEXT !== '0',
    reports: data.reports.map((r) => ({ file: r.file, rowsRead: r.rowsRead, rowsKept: r.rowsKept, malformed: r.malformed })),
  }));
}

const [mode, dir] = process.argv.slice(2);
if (mode === 'generate' && dir) await generate(dir);
else if (mode === 'load' && dir) await load(dir);
else {
  console.error('Usage: node --import tsx bench/data.ts generate|load DIR');
  process.exitCode = 2;
}
