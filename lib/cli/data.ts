// `minielm data esci|table|synthetic|q2q`: load relevance data, generate the synthetic catalog, build Q2Q pairs.
import { mkdir } from 'node:fs/promises';
import { writeFileAtomic } from '../util/atomic.ts';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { MinielmError } from '../errors.ts';
import { loadEsci } from '../data/esci.ts';
import { LABEL_PRESETS } from '../data/labels.ts';
import type { LabelMap } from '../data/labels.ts';
import { buildQ2Q, writeQ2Q } from '../data/q2q.ts';
import type { Q2QStats } from '../data/q2q.ts';
import { SYNTHETIC_DEFAULTS, SYNTHETIC_NOTICE, generateSyntheticCatalog, writeSyntheticCatalog } from '../data/synthetic.ts';
import { TABLE_PRESETS, loadRelevanceTable } from '../data/table.ts';
import type { ColumnMap } from '../data/table.ts';
import type { EsciLabel, Judgement, LoadReport, RelevanceDataset } from '../data/types.ts';

const ESCI_HELP = `Usage: minielm data esci --examples FILE [options]

Reads the official ESCI parquet files (shopping_queries_dataset_examples.parquet and
shopping_queries_dataset_products.parquet) window by window, keeping one locale.

Options:
  --examples FILE     shopping_queries_dataset_examples.parquet (required)
  --products FILE     shopping_queries_dataset_products.parquet (titles, brand, colour, bullets, description)
  --locale L          us (default), es, jp or all
  --split S           official split to keep: all (default), train, test
  --version V         all (default), small (small_version = 1), large (large_version = 1)
  --no-text           skip product description and bullet points (less memory)
  --out DIR           write judgements.jsonl and products.jsonl there
  -h, --help          this text`;

const TABLE_HELP = `Usage: minielm data table --file FILE [options]

Reads a CSV or JSONL relevance table through a column map and a label map. Malformed rows are
counted and listed with their line numbers.

Options:
  --file FILE               the table (.csv, or .jsonl / .ndjson)
  --preset NAME             homedepot | crowdflower: column map, encoding and label map of that set
  --format F                csv | jsonl (default: from the extension)
  --encoding E              utf-8 (default), latin1, windows-1252, ...
  --delimiter C             CSV delimiter (default ,)
  --query-column NAME       default: query
  --product-id-column NAME  default: product_id (empty string: use the title as the id)
  --title-column NAME       default: title
  --label-column NAME       default: label
  --labels MAP              esci (default) | homedepot | crowdflower | graded:MIN:MAX:E:S:C
                            (graded: gain = (r - MIN) / (MAX - MIN); E, S, C are gain thresholds)
  --out DIR                 write judgements.jsonl and products.jsonl there
  -h, --help                this text`;

const SYNTHETIC_HELP = `Usage: minielm data synthetic --out DIR [options]

Generates a SYNTHETIC catalog (invented products, queries and labels with known ground truth).
Every file it writes says so ("synthetic": true in each record, SYNTHETIC.txt, manifest.json).

Options:
  --out DIR            output folder (required)
  --seed N             default ${SYNTHETIC_DEFAULTS.seed}; the same seed gives identical files
  --products N         default ${SYNTHETIC_DEFAULTS.products}
  --queries N          default ${SYNTHETIC_DEFAULTS.queries}
  --forms-per-intent X mean surface forms per intent, default ${SYNTHETIC_DEFAULTS.formsPerIntent}
  -h, --help           this text`;

const Q2Q_HELP = `Usage: minielm data q2q --out DIR (--synthetic | --file FILE | --esci-examples FILE) [options]

Builds query-to-query rewrite pairs: queries sharing at least k relevant products become
candidate rewrites of each other (both directions), then a split with no query on both sides.
Writes train.jsonl and test.jsonl ({"query", "rewrite", "shared"} per line) and stats.json.

Input (one of):
  --synthetic               the synthetic catalog (--seed, --products, --queries as in "data synthetic")
  --file FILE               a relevance table (with --preset / column options as in "data table")
  --esci-examples FILE      ESCI examples parquet (with --locale, default us)

Options:
  --out DIR                  output folder (required)
  --k N                      minimum shared relevant products (default 2)
  --relevant E,S             labels counted as relevant (default E,S)
  --min-gain X               relevant when gain >= X instead of by label
  --official-split S         use only judgements of this official split (ESCI: train)
  --test-fraction X          default 0.2
  --split-seed N             default 0
  --split-by M               component (default) | query-hash
  --max-queries-per-product N  hub cap (default 64)
  --max-rewrites-per-query N   default 20
  -h, --help                 this text`;

const OVERVIEW = `Usage: minielm data <esci|table|synthetic|q2q> [options]

Subcommands:
  esci       load the official ESCI parquet files (locale filter, official split)
  table      load a CSV / JSONL relevance table (column map, label map, encodings)
  synthetic  generate the SYNTHETIC catalog (seeded, known ground truth)
  q2q        build query-to-query rewrite pairs and a leak-free train/test split

Run "minielm data <subcommand> --help" for its options.`;

const SUB_HELP: Record<string, string> = { esci: ESCI_HELP, table: TABLE_HELP, synthetic: SYNTHETIC_HELP, q2q: Q2Q_HELP };

// lib/cli/main.ts answers any "--help" with this module's `help` before calling run(), so the text is
// chosen from the command line at load time: "minielm data q2q --help" shows the q2q options.
const argvSub = process.argv.slice(2)[0] === 'data' ? process.argv.slice(2)[1] : undefined;
export const help: string = (argvSub && SUB_HELP[argvSub]) || OVERVIEW;

const tableOptions = {
  file: { type: 'string' },
  preset: { type: 'string' },
  format: { type: 'string' },
  encoding: { type: 'string' },
  delimiter: { type: 'string' },
  'query-column': { type: 'string' },
  'product-id-column': { type: 'string' },
  'title-column': { type: 'string' },
  'label-column': { type: 'string' },
  labels: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

const esciOptions = {
  locale: { type: 'string' },
  split: { type: 'string' },
  version: { type: 'string' },
  'no-text': { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

const syntheticOptions = {
  seed: { type: 'string' },
  products: { type: 'string' },
  queries: { type: 'string' },
  'forms-per-intent': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

function parse<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, command: string) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: false, strict: true });
  } catch (err) {
    throw new MinielmError('MINIELM_INVALID_ARGUMENT', `minielm data ${command}: ${(err as Error).message}. Run "minielm data ${command} --help".`);
  }
}

function number(flag: string, value: string | undefined, fallback: number, opts: { integer?: boolean; min?: number } = {}): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || (opts.integer && !Number.isInteger(n)) || (opts.min !== undefined && n < opts.min)) {
    throw new MinielmError('MINIELM_INVALID_ARGUMENT', `--${flag} must be ${opts.integer ? 'an integer' : 'a number'}${opts.min !== undefined ? ` >= ${opts.min}` : ''} (got "${value}").`);
  }
  return n;
}

function oneOf<T extends string>(flag: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new MinielmError('MINIELM_INVALID_ARGUMENT', `--${flag} must be one of ${allowed.join(', ')} (got "${value}").`);
  }
  return value as T;
}

function parseLabelMap(value: string | undefined, fallback: LabelMap): LabelMap {
  if (value === undefined) return fallback;
  const preset = LABEL_PRESETS[value];
  if (preset) return preset;
  const m = /^graded:([^:]+):([^:]+):([^:]+):([^:]+):([^:]+)$/.exec(value);
  if (m) {
    const [min, max, e, s, c] = m.slice(1).map(Number) as [number, number, number, number, number];
    if ([min, max, e, s, c].every(Number.isFinite)) return { kind: 'graded', min, max, thresholds: { E: e, S: s, C: c } };
  }
  throw new MinielmError('MINIELM_INVALID_ARGUMENT', `--labels must be ${Object.keys(LABEL_PRESETS).join(', ')} or graded:MIN:MAX:E:S:C (got "${value}").`);
}

/** Progress on stderr at most every 0.5 s, with a rate. */
function progressLine(what: string): { tick: (done: number, total?: number, extra?: string) => void; end: () => void } {
  const started = Date.now();
  let last = 0;
  let shown = false;
  return {
    tick(done, total, extra) {
      const now = Date.now();
      if (now - last < 500) return;
      last = now;
      shown = true;
      const rate = done / Math.max(1e-3, (now - started) / 1000);
      process.stderr.write(`\r${what}: ${done.toLocaleString('en-US')}${total ? ` / ${total.toLocaleString('en-US')}` : ''} rows, ${Math.round(rate).toLocaleString('en-US')} rows/s${extra ? `, ${extra}` : ''}   `);
    },
    end() {
      if (shown) process.stderr.write('\n');
      process.stderr.write(`${what}: done in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    },
  };
}

function printReport(r: LoadReport): void {
  console.log(`${r.file}: ${r.rowsRead} rows read, ${r.rowsKept} kept, ${r.rowsFiltered} filtered out, ${r.malformed} malformed`);
  for (const m of r.malformedExamples) console.log(`  line ${m.line}: ${m.reason}${m.raw ? `  | ${m.raw}` : ''}`);
  if (r.malformed > r.malformedExamples.length) console.log(`  … and ${r.malformed - r.malformedExamples.length} more malformed rows`);
  for (const n of r.notes ?? []) console.log(`  note: ${n}`);
}

function summarise(d: RelevanceDataset): void {
  const labels: Record<EsciLabel, number> = { E: 0, S: 0, C: 0, I: 0 };
  for (const j of d.judgements) labels[j.label]++;
  const queries = new Set(d.judgements.map((j) => j.query)).size;
  console.log(`${d.synthetic ? 'SYNTHETIC ' : ''}dataset ${d.source}: ${d.judgements.length} judgements, ${queries} queries, ${d.products.size} products; labels E ${labels.E}, S ${labels.S}, C ${labels.C}, I ${labels.I}${d.split?.length ? `; official splits: ${d.split.join(', ')}` : ''}`);
}

async function writeDataset(d: RelevanceDataset, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const synthetic = d.synthetic ? { synthetic: true } : {};
  const j = d.judgements.map((x) => JSON.stringify({ ...synthetic, query: x.query, query_id: x.queryId, product_id: x.productId, title: d.products.get(x.productId)?.title ?? '', label: x.label, gain: x.gain, split: x.split }));
  await writeFileAtomic(join(dir, 'judgements.jsonl'), j.length ? `${j.join('\n')}\n` : '');
  const p = [...d.products.values()].map((x) => JSON.stringify({ ...synthetic, product_id: x.id, title: x.title, brand: x.brand, color: x.color, bullets: x.bullets, description: x.description, locale: x.locale, ...x.fields }));
  await writeFileAtomic(join(dir, 'products.jsonl'), p.length ? `${p.join('\n')}\n` : '');
  console.log(`wrote ${join(dir, 'judgements.jsonl')} and ${join(dir, 'products.jsonl')}`);
}

function requireFlag(flag: string, value: string | undefined, command: string): string {
  if (!value) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `minielm data ${command}: --${flag} is required. Run "minielm data ${command} --help".`);
  return value;
}

async function loadEsciFromFlags(values: { locale?: string; split?: string; version?: string; 'no-text'?: boolean }, examples: string, products: string | undefined) {
  const bar = progressLine('esci');
  const data = await loadEsci({
    examplesPath: examples,
    ...(products ? { productsPath: products } : {}),
    locale: values.locale ?? 'us',
    split: oneOf('split', values.split, ['all', 'train', 'test'] as const, 'all'),
    version: oneOf('version', values.version, ['all', 'small', 'large'] as const, 'all'),
    productText: !values['no-text'],
    onProgress: (p) => bar.tick(p.rowsRead, p.rowsTotal, `${p.rowsKept.toLocaleString('en-US')} kept (${p.file})`),
  });
  bar.end();
  return data;
}

async function loadTableFromFlags(values: Record<string, string | boolean | undefined>, file: string) {
  const str = (k: string) => values[k] as string | undefined;
  const presetName = str('preset');
  const preset = presetName === undefined ? undefined : TABLE_PRESETS[presetName];
  if (presetName !== undefined && !preset) {
    throw new MinielmError('MINIELM_INVALID_ARGUMENT', `--preset must be one of ${Object.keys(TABLE_PRESETS).join(', ')} (got "${presetName}").`);
  }
  const columns: ColumnMap = { ...(preset?.columns ?? { query: 'query', productId: 'product_id', title: 'title', label: 'label' }) };
  if (str('query-column')) columns.query = str('query-column') as string;
  if (str('label-column')) columns.label = str('label-column') as string;
  if (str('title-column')) columns.title = str('title-column') as string;
  const pid = str('product-id-column');
  if (pid !== undefined) {
    if (pid === '') delete columns.productId;
    else columns.productId = pid;
  }
  const labels = parseLabelMap(str('labels'), presetName ? (LABEL_PRESETS[presetName] as LabelMap) : LABEL_PRESETS.esci as LabelMap);
  const format = str('format') === undefined ? undefined : oneOf('format', str('format'), ['csv', 'jsonl'] as const, 'csv');
  const bar = progressLine('table');
  const data = await loadRelevanceTable({
    path: file,
    columns,
    labels,
    ...(format ? { format } : {}),
    encoding: str('encoding') ?? preset?.encoding ?? 'utf-8',
    ...(str('delimiter') ? { delimiter: str('delimiter') as string } : {}),
    onProgress: (p) => bar.tick(p.rowsRead, undefined, `${p.malformed} malformed`),
  });
  bar.end();
  return data;
}

function syntheticFromFlags(values: Record<string, string | boolean | undefined>) {
  const str = (k: string) => values[k] as string | undefined;
  return generateSyntheticCatalog({
    seed: number('seed', str('seed'), SYNTHETIC_DEFAULTS.seed, { integer: true, min: 0 }),
    products: number('products', str('products'), SYNTHETIC_DEFAULTS.products, { integer: true, min: 1 }),
    queries: number('queries', str('queries'), SYNTHETIC_DEFAULTS.queries, { integer: true, min: 1 }),
    formsPerIntent: number('forms-per-intent', str('forms-per-intent'), SYNTHETIC_DEFAULTS.formsPerIntent, { min: 1 }),
  });
}

function printQ2QStats(s: Q2QStats, synthetic: boolean): void {
  const tag = synthetic ? 'SYNTHETIC ' : '';
  console.log(`${tag}q2q k=${s.k} (${s.relevance}${s.officialSplit ? `, official split ${s.officialSplit}` : ''}, filter ${s.filter})`);
  console.log(`  graph: ${s.queries} queries (${s.queriesWithRelevant} with a relevant product), ${s.products} products (${s.productsWithRelevant} relevant to some query), ${s.relevantEdges} relevant edges, ${s.hubProducts} hub products capped at ${s.maxQueriesPerProduct} queries`);
  console.log(`  pairs: ${s.candidatePairs} candidates, ${s.pairsAfterCap} after per-query cap, ${s.pairsAfterFilter} after filter (undirected)`);
  console.log(`  split (${s.splitBy}${s.giantGroupSplit ? ', largest group split by query hash' : ''}): train ${s.train.pairs} pairs / ${s.train.queries} queries, test ${s.test.pairs} pairs / ${s.test.queries} queries, ${s.crossSplitPairsDropped} crossing pairs dropped, ${s.queriesInBothSplits} queries on both sides`);
  console.log(`  groups: ${s.components.count}, largest ${s.components.largest} queries`);
  console.log(`  rewrites per query: ${JSON.stringify(s.rewritesPerQuery)}`);
  console.log(`  queries per product: ${JSON.stringify(s.queriesPerProduct)}`);
  console.log(`  shared products per pair: ${JSON.stringify(s.sharedCount)}`);
  for (const e of s.examples) console.log(`  e.g. "${e.query}" -> "${e.rewrite}" (shared ${e.shared})`);
}

async function runEsci(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...esciOptions, examples: { type: 'string' }, products: { type: 'string' }, out: { type: 'string' } }, 'esci');
  if (values.help) return (console.log(ESCI_HELP), 0);
  const data = await loadEsciFromFlags(values, requireFlag('examples', values.examples, 'esci'), values.products);
  for (const r of data.reports) printReport(r);
  summarise(data);
  if (values.out) await writeDataset(data, values.out);
  return 0;
}

async function runTable(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...tableOptions, out: { type: 'string' } }, 'table');
  if (values.help) return (console.log(TABLE_HELP), 0);
  const data = await loadTableFromFlags(values, requireFlag('file', values.file, 'table'));
  printReport(data.report);
  summarise(data);
  if (values.out) await writeDataset(data, values.out);
  return 0;
}

async function runSynthetic(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...syntheticOptions, out: { type: 'string' } }, 'synthetic');
  if (values.help) return (console.log(SYNTHETIC_HELP), 0);
  const out = requireFlag('out', values.out, 'synthetic');
  const catalog = syntheticFromFlags(values);
  console.log(SYNTHETIC_NOTICE);
  summarise(catalog);
  const files = await writeSyntheticCatalog(catalog, out);
  console.log(`wrote SYNTHETIC files: ${files.join(', ')}`);
  return 0;
}

async function runQ2Q(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    ...tableOptions, ...esciOptions, ...syntheticOptions,
    out: { type: 'string' }, synthetic: { type: 'boolean' }, 'esci-examples': { type: 'string' },
    k: { type: 'string' }, relevant: { type: 'string' }, 'min-gain': { type: 'string' }, 'official-split': { type: 'string' },
    'test-fraction': { type: 'string' }, 'split-seed': { type: 'string' }, 'split-by': { type: 'string' },
    'max-queries-per-product': { type: 'string' }, 'max-rewrites-per-query': { type: 'string' },
  }, 'q2q');
  if (values.help) return (console.log(Q2Q_HELP), 0);
  const out = requireFlag('out', values.out, 'q2q');
  const sources = [values.synthetic, values.file, values['esci-examples']].filter(Boolean).length;
  if (sources !== 1) throw new MinielmError('MINIELM_INVALID_ARGUMENT', 'minielm data q2q: give exactly one of --synthetic, --file FILE, --esci-examples FILE.');

  let judgements: Judgement[];
  let synthetic = false;
  let source: string;
  if (values.synthetic) {
    const catalog = syntheticFromFlags(values);
    console.log(SYNTHETIC_NOTICE);
    judgements = catalog.judgements;
    synthetic = true;
    source = catalog.source;
  } else if (values.file) {
    const data = await loadTableFromFlags(values, values.file);
    printReport(data.report);
    judgements = data.judgements;
    source = data.source;
    synthetic = data.synthetic === true;
  } else {
    const data = await loadEsciFromFlags({ ...values, 'no-text': true }, values['esci-examples'] as string, undefined);
    for (const r of data.reports) printReport(r);
    judgements = data.judgements;
    source = data.source;
  }
  const relevant = (values.relevant ?? 'E,S').split(',').map((x) => x.trim().toUpperCase());
  for (const l of relevant) if (!['E', 'S', 'C', 'I'].includes(l)) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `--relevant must list letters from E,S,C,I (got "${values.relevant}").`);
  const minGain = values['min-gain'] === undefined ? undefined : number('min-gain', values['min-gain'], 0, { min: 0 });
  const started = Date.now();
  const result = await buildQ2Q(judgements, {
    k: number('k', values.k, 2, { integer: true, min: 1 }),
    labels: relevant as EsciLabel[],
    ...(minGain !== undefined ? { minGain } : {}),
    ...(values['official-split'] ? { officialSplit: values['official-split'] } : {}),
    testFraction: number('test-fraction', values['test-fraction'], 0.2, { min: 0 }),
    seed: number('split-seed', values['split-seed'], 0, { integer: true, min: 0 }),
    splitBy: oneOf('split-by', values['split-by'], ['component', 'query-hash'] as const, 'component'),
    maxQueriesPerProduct: number('max-queries-per-product', values['max-queries-per-product'], 64, { integer: true, min: 2 }),
    maxRewritesPerQuery: number('max-rewrites-per-query', values['max-rewrites-per-query'], 20, { integer: true, min: 1 }),
    onProgress: (m) => process.stderr.write(`q2q: ${m}\n`),
  });
  process.stderr.write(`q2q: done in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  const files = await writeQ2Q(result, out, synthetic ? { synthetic: true } : {});
  printQ2QStats(result.stats, synthetic);
  console.log(`source ${source}; wrote ${files.join(', ')}`);
  return 0;
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'esci': return runEsci(rest);
    case 'table': return runTable(rest);
    case 'synthetic': return runSynthetic(rest);
    case 'q2q': return runQ2Q(rest);
    case undefined:
    case 'help':
      console.log(OVERVIEW);
      return sub ? 0 : 1;
    default:
      console.error(`minielm data: unknown subcommand "${sub}".\n\n${OVERVIEW}`);
      return 2;
  }
}
