// Amazon Shopping Queries (ESCI) loader: reads the two official parquet files with hyparquet, one
// column of one row window at a time, so memory follows what the locale filter keeps, not the file.
import { stat } from 'node:fs/promises';
import { asyncBufferFromFile, parquetMetadataAsync, parquetRead, parquetSchema } from 'hyparquet';
import type { AsyncBuffer, FileMetaData } from 'hyparquet';
import { MinielmError, describeValue } from '../errors.ts';
import { ESCI_GAIN, parseEsciLabel } from './labels.ts';
import type { EsciLabel, Judgement, LoadReport, MalformedRow, Product, RelevanceDataset } from './types.ts';

/** Columns of `shopping_queries_dataset_examples.parquet`, with the parquet physical type each must have. */
export const ESCI_EXAMPLE_COLUMNS = {
  example_id: 'INT64',
  query: 'BYTE_ARRAY',
  query_id: 'INT64',
  product_id: 'BYTE_ARRAY',
  product_locale: 'BYTE_ARRAY',
  esci_label: 'BYTE_ARRAY',
  small_version: 'INT64',
  large_version: 'INT64',
  split: 'BYTE_ARRAY',
} as const;

/** Columns of `shopping_queries_dataset_products.parquet` (all strings, nullable). */
export const ESCI_PRODUCT_COLUMNS = {
  product_id: 'BYTE_ARRAY',
  product_title: 'BYTE_ARRAY',
  product_description: 'BYTE_ARRAY',
  product_bullet_point: 'BYTE_ARRAY',
  product_brand: 'BYTE_ARRAY',
  product_color: 'BYTE_ARRAY',
  product_locale: 'BYTE_ARRAY',
} as const;

export type EsciExampleColumn = keyof typeof ESCI_EXAMPLE_COLUMNS;
export type EsciProductColumn = keyof typeof ESCI_PRODUCT_COLUMNS;

export interface EsciProgress {
  file: string;
  rowsRead: number;
  rowsTotal: number;
  rowsKept: number;
}

export interface EsciOptions {
  /** Path of shopping_queries_dataset_examples.parquet. */
  examplesPath: string;
  /** Path of shopping_queries_dataset_products.parquet; without it products are bare ids. */
  productsPath?: string;
  /** 'us' (default), 'es', 'jp', or 'all'. With 'all', product ids become "<locale>/<product_id>" (ids repeat across locales). */
  locale?: string;
  /** Official split to keep: 'train', 'test' or 'all' (default). */
  split?: 'train' | 'test' | 'all';
  /** 'small' keeps small_version = 1 (the reduced task-1 set), 'large' keeps large_version = 1, 'all' (default) keeps both. */
  version?: 'small' | 'large' | 'all';
  /** Gain per class; default ESCI_GAIN (E 1, S 0.1, C 0.01, I 0). */
  gains?: Partial<Record<EsciLabel, number>>;
  /** Read description and bullet points (the large columns). Default true. */
  productText?: boolean;
  /** Keep only products that a kept judgement points at. Default true. */
  onlyJudgedProducts?: boolean;
  /** Rows decoded at once inside a row group; bounds memory when a file has one huge row group. Default 262,144. */
  windowRows?: number;
  onProgress?: (p: EsciProgress) => void;
}

export interface EsciDataset extends RelevanceDataset {
  reports: LoadReport[];
}

const MAX_EXAMPLES = 10;

/** Checks the options before any file is opened: every mistake names the option and the fix. */
function validateEsciOptions(options: EsciOptions, paths: readonly ('examplesPath' | 'productsPath')[]): void {
  const bad = (msg: string) => new MinielmError('MINIELM_INVALID_ARGUMENT', `ESCI loader: ${msg}`);
  if (options === null || typeof options !== 'object') throw bad(`options must be an object {examplesPath, ...}, got ${describeValue(options)}`);
  for (const key of paths) {
    const p = options[key];
    if (typeof p !== 'string' || p.length === 0) throw bad(`${key} must be the path of the official ESCI parquet file, got ${describeValue(p)}`);
  }
  if (options.productsPath !== undefined && (typeof options.productsPath !== 'string' || options.productsPath.length === 0))
    throw bad(`productsPath must be left out or be the path of shopping_queries_dataset_products.parquet, got ${describeValue(options.productsPath)}`);
  if (options.locale !== undefined && typeof options.locale !== 'string') throw bad(`locale must be 'us', 'es', 'jp' or 'all', got ${describeValue(options.locale)}`);
  if (options.split !== undefined && !['train', 'test', 'all'].includes(options.split)) throw bad(`split must be 'train', 'test' or 'all', got ${describeValue(options.split)}`);
  if (options.version !== undefined && !['small', 'large', 'all'].includes(options.version)) throw bad(`version must be 'small', 'large' or 'all', got ${describeValue(options.version)}`);
  if (options.gains !== undefined) {
    if (options.gains === null || typeof options.gains !== 'object') throw bad(`gains must be an object {E, S, C, I} of gains in [0, 1], got ${describeValue(options.gains)}`);
    for (const [k, g] of Object.entries(options.gains)) {
      if (!['E', 'S', 'C', 'I'].includes(k) || !(typeof g === 'number' && g >= 0 && g <= 1)) throw bad(`gains.${k.slice(0, 20)} must be a gain in [0, 1] for one of E, S, C, I, got ${describeValue(g)}`);
    }
  }
  for (const key of ['productText', 'onlyJudgedProducts'] as const) {
    if (options[key] !== undefined && typeof options[key] !== 'boolean') throw bad(`${key} must be true or false, got ${describeValue(options[key])}`);
  }
  if (options.windowRows !== undefined && !(Number.isSafeInteger(options.windowRows) && options.windowRows > 0))
    throw bad(`windowRows must be a positive integer (got ${describeValue(options.windowRows)}).`);
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw bad(`onProgress must be a function, got ${describeValue(options.onProgress)}`);
}

interface ParquetSource {
  path: string;
  file: AsyncBuffer;
  metadata: FileMetaData;
  numRows: number;
  /** [start, end) row ranges, one per row group. */
  groups: Array<[number, number]>;
}

async function openParquet(path: string, expected: Record<string, string>, needed: readonly string[]): Promise<ParquetSource> {
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new Error('not a file');
  } catch {
    throw new MinielmError('MINIELM_NOT_FOUND', `${path}: no such parquet file. Pass the path of the official ESCI file (download it from github.com/amazon-science/esci-data).`);
  }
  let file: AsyncBuffer;
  let metadata: FileMetaData;
  let top: ReturnType<typeof parquetSchema>['children'];
  try {
    file = await asyncBufferFromFile(path);
    metadata = await parquetMetadataAsync(file);
    // A corrupted footer can parse as metadata whose schema list is inconsistent (hyparquet then throws a TypeError).
    top = parquetSchema(metadata).children;
  } catch (err) {
    throw new MinielmError('MINIELM_BAD_FILE', `${path}: not a readable parquet file (${(err as Error).message}). Check that the download finished and the file is the official parquet.`, { cause: err });
  }
  const byName = new Map(top.map((c) => [c.element.name, c.element]));
  for (const column of needed) {
    const element = byName.get(column);
    if (!element) {
      throw new MinielmError('MINIELM_BAD_FILE', `${path}: missing column "${column}" (found: ${[...byName.keys()].join(', ')}). The ESCI loader expects the official schema.`);
    }
    const want = expected[column];
    const okInt = want === 'INT64' && (element.type === 'INT64' || element.type === 'INT32');
    if (element.type !== want && !okInt) {
      throw new MinielmError('MINIELM_BAD_FILE', `${path}: column "${column}" has type ${element.type ?? 'group'}, expected ${want === 'BYTE_ARRAY' ? 'string (BYTE_ARRAY)' : 'integer (INT64)'}. The ESCI loader expects the official schema.`);
    }
  }
  const groups: Array<[number, number]> = [];
  let start = 0;
  for (const g of metadata.row_groups) {
    const n = Number(g.num_rows);
    groups.push([start, start + n]);
    start += n;
  }
  return { path, file, metadata, numRows: Number(metadata.num_rows), groups };
}

/** Row windows: every row group, cut into pieces of at most `windowRows`. */
function windows(src: ParquetSource, windowRows: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [a, b] of src.groups) {
    for (let s = a; s < b; s += windowRows) out.push([s, Math.min(b, s + windowRows)]);
  }
  return out;
}

/** Reads rows [start, end) of one column into a plain array (strings, numbers or null). */
async function readColumnWindow(src: ParquetSource, column: string, start: number, end: number): Promise<unknown[]> {
  const out: unknown[] = new Array(end - start).fill(null);
  try {
    await parquetRead({
      file: src.file,
      metadata: src.metadata,
      columns: [column],
      rowStart: start,
      rowEnd: end,
      onChunk: (chunk) => {
        // chunks may reach outside the requested range (whole pages): copy the overlap only
        const from = Math.max(start, chunk.rowStart);
        const to = Math.min(end, chunk.rowEnd);
        const data = chunk.columnData;
        for (let r = from; r < to; r++) out[r - start] = data[r - chunk.rowStart];
      },
    });
  } catch (err) {
    throw new MinielmError('MINIELM_BAD_FILE', `${src.path}: cannot decode column "${column}" rows ${start}..${end} (${(err as Error).message}). The file may be truncated or corrupt.`, { cause: err });
  }
  return out;
}

function asText(v: unknown): string | undefined {
  if (v === null || v === undefined) return undefined;
  return typeof v === 'string' ? v : String(v);
}

function asInt(v: unknown): number | undefined {
  if (v === null || v === undefined) return undefined;
  return typeof v === 'bigint' ? Number(v) : Number(v);
}

function newReport(file: string): LoadReport {
  return { file, rowsRead: 0, rowsKept: 0, rowsFiltered: 0, malformed: 0, malformedExamples: [] };
}

function addMalformed(report: LoadReport, row: MalformedRow): void {
  report.malformed++;
  if (report.malformedExamples.length < MAX_EXAMPLES) report.malformedExamples.push(row);
}

/**
 * Streams the judgements of the examples file, one window at a time. The locale column is read first and
 * the other columns only materialise the rows it keeps.
 */
export async function* iterateEsciExamples(options: EsciOptions, report: LoadReport = newReport(options?.examplesPath)): AsyncGenerator<Judgement[]> {
  validateEsciOptions(options, ['examplesPath']);
  const locale = options.locale ?? 'us';
  const split = options.split ?? 'all';
  const version = options.version ?? 'all';
  const windowRows = options.windowRows ?? 262_144;
  if (!(Number.isInteger(windowRows) && windowRows > 0)) {
    throw new MinielmError('MINIELM_INVALID_ARGUMENT', `windowRows must be a positive integer (got ${describeValue(windowRows)}).`);
  }
  const needed: EsciExampleColumn[] = ['query', 'query_id', 'product_id', 'product_locale', 'esci_label', 'split'];
  if (version === 'small') needed.push('small_version');
  if (version === 'large') needed.push('large_version');
  const src = await openParquet(options.examplesPath, ESCI_EXAMPLE_COLUMNS, needed);
  const gains = { ...ESCI_GAIN, ...options.gains };

  for (const [start, end] of windows(src, windowRows)) {
    const locales = await readColumnWindow(src, 'product_locale', start, end);
    let keep: number[] = [];
    for (let i = 0; i < locales.length; i++) if (locale === 'all' || locales[i] === locale) keep.push(i);
    const filterBy = async (column: string, accept: (v: unknown) => boolean) => {
      if (keep.length === 0) return;
      const values = await readColumnWindow(src, column, start, end);
      keep = keep.filter((i) => accept(values[i]));
    };
    if (split !== 'all') await filterBy('split', (v) => v === split);
    if (version === 'small') await filterBy('small_version', (v) => asInt(v) === 1);
    if (version === 'large') await filterBy('large_version', (v) => asInt(v) === 1);

    const columns: Record<string, unknown[]> = {};
    for (const column of ['query', 'query_id', 'product_id', 'esci_label', 'split'] as const) {
      if (keep.length === 0) break;
      const values = await readColumnWindow(src, column, start, end);
      columns[column] = keep.map((i) => values[i]); // drop the rest of the window at once
    }
    const batch: Judgement[] = [];
    for (let j = 0; j < keep.length; j++) {
      const row = start + (keep[j] as number);
      const query = asText(columns.query?.[j]);
      const productId = asText(columns.product_id?.[j]);
      const labelText = asText(columns.esci_label?.[j]);
      const label = labelText === undefined ? undefined : parseEsciLabel(labelText);
      if (!query || !productId || !label) {
        const what = !query ? 'empty query' : !productId ? 'empty product_id' : `esci_label "${labelText ?? ''}" is not E, S, C or I`;
        addMalformed(report, { line: row + 1, reason: `row ${row}: ${what}` });
        continue;
      }
      const loc = locale === 'all' ? asText(locales[keep[j] as number]) : undefined;
      const queryId = asText(columns.query_id?.[j]);
      const judgement: Judgement = {
        query,
        productId: loc ? `${loc}/${productId}` : productId,
        label,
        gain: gains[label],
      };
      if (queryId !== undefined) judgement.queryId = queryId;
      const s = asText(columns.split?.[j]);
      if (s !== undefined) judgement.split = s;
      batch.push(judgement);
    }
    report.rowsRead += end - start;
    report.rowsKept += batch.length;
    report.rowsFiltered += end - start - keep.length;
    options.onProgress?.({ file: src.path, rowsRead: report.rowsRead, rowsTotal: src.numRows, rowsKept: report.rowsKept });
    if (batch.length) yield batch;
  }
}

/**
 * Streams the products file. `wanted`, when given, is the set of product ids to keep (after locale
 * prefixing for locale 'all'); other rows are dropped before their text columns are read.
 */
export async function* iterateEsciProducts(
  options: EsciOptions & { productsPath: string },
  wanted?: ReadonlySet<string>,
  report: LoadReport = newReport(options?.productsPath),
): AsyncGenerator<Product[]> {
  validateEsciOptions(options, ['productsPath']);
  const locale = options.locale ?? 'us';
  const windowRows = options.windowRows ?? 262_144;
  const withText = options.productText ?? true;
  const needed: EsciProductColumn[] = ['product_id', 'product_title', 'product_brand', 'product_color', 'product_locale'];
  if (withText) needed.push('product_description', 'product_bullet_point');
  const src = await openParquet(options.productsPath, ESCI_PRODUCT_COLUMNS, needed);

  for (const [start, end] of windows(src, windowRows)) {
    const locales = await readColumnWindow(src, 'product_locale', start, end);
    const ids = await readColumnWindow(src, 'product_id', start, end);
    const keep: number[] = [];
    const keptIds: string[] = [];
    for (let i = 0; i < locales.length; i++) {
      const loc = asText(locales[i]);
      if (locale !== 'all' && loc !== locale) continue;
      const raw = asText(ids[i]);
      if (!raw) {
        addMalformed(report, { line: start + i + 1, reason: `row ${start + i}: empty product_id` });
        continue;
      }
      const id = locale === 'all' ? `${loc}/${raw}` : raw;
      if (wanted && !wanted.has(id)) continue;
      keep.push(i);
      keptIds.push(id);
    }
    const columns: Record<string, unknown[]> = {};
    const textColumns = needed.filter((c) => c !== 'product_id' && c !== 'product_locale');
    for (const column of textColumns) {
      if (keep.length === 0) break;
      const values = await readColumnWindow(src, column, start, end);
      columns[column] = keep.map((i) => values[i]);
    }
    const batch: Product[] = [];
    for (let j = 0; j < keep.length; j++) {
      const product: Product = { id: keptIds[j] as string, title: asText(columns.product_title?.[j]) ?? '' };
      const brand = asText(columns.product_brand?.[j]);
      const color = asText(columns.product_color?.[j]);
      const bullets = asText(columns.product_bullet_point?.[j]);
      const description = asText(columns.product_description?.[j]);
      const loc = asText(locales[keep[j] as number]);
      if (brand) product.brand = brand;
      if (color) product.color = color;
      if (bullets) product.bullets = bullets;
      if (description) product.description = description;
      if (loc) product.locale = loc;
      batch.push(product);
    }
    report.rowsRead += end - start;
    report.rowsKept += batch.length;
    report.rowsFiltered += end - start - keep.length;
    options.onProgress?.({ file: src.path, rowsRead: report.rowsRead, rowsTotal: src.numRows, rowsKept: report.rowsKept });
    if (batch.length) yield batch;
  }
}

/** Loads judgements (and products, when productsPath is given) for one locale into memory. */
export async function loadEsci(options: EsciOptions): Promise<EsciDataset> {
  validateEsciOptions(options, ['examplesPath']);
  const exampleReport = newReport(options.examplesPath);
  const judgements: Judgement[] = [];
  for await (const batch of iterateEsciExamples(options, exampleReport)) {
    for (const j of batch) judgements.push(j);
  }
  const products = new Map<string, Product>();
  const reports = [exampleReport];
  const judged = new Set(judgements.map((j) => j.productId));
  if (options.productsPath) {
    const productReport = newReport(options.productsPath);
    reports.push(productReport);
    const wanted = options.onlyJudgedProducts === false ? undefined : judged;
    for await (const batch of iterateEsciProducts({ ...options, productsPath: options.productsPath }, wanted, productReport)) {
      for (const p of batch) products.set(p.id, p);
    }
  }
  // Judgements whose product is absent from the products file still get a bare entry, so ids always resolve.
  let missing = 0;
  for (const id of judged) {
    if (!products.has(id)) {
      products.set(id, { id, title: '' });
      missing++;
    }
  }
  if (missing && options.productsPath) {
    const last = reports[reports.length - 1] as LoadReport;
    (last.notes ??= []).push(`${missing} judged product ids are not in ${options.productsPath}; they have an empty title.`);
  }
  const splits = [...new Set(judgements.map((j) => j.split).filter((s): s is string => s !== undefined))].sort();
  return { source: `esci:${options.examplesPath}`, products, judgements, split: splits, reports };
}
