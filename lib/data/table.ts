// Generic relevance-table loader: CSV or JSONL, any encoding, a column map and a label map.
// Rows that cannot be used are counted and reported with their line numbers, never dropped silently.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { parse } from 'csv-parse';
import iconv from 'iconv-lite';
import { MinielmError, describeValue } from '../errors.ts';
import { applyLabelMap, validateLabelMap } from './labels.ts';
import type { LabelMap } from './labels.ts';
import type { Judgement, LoadReport, Product, RelevanceDataset } from './types.ts';

/** Which source column holds what. Only `query` and `label` are required. */
export interface ColumnMap {
  query: string;
  label: string;
  /** Product id column; without it the product title is the id. */
  productId?: string;
  title?: string;
  queryId?: string;
  split?: string;
  brand?: string;
  color?: string;
  description?: string;
  /** Other product text columns, kept in Product.fields by column name. */
  extra?: string[];
}

export interface TableOptions {
  path: string;
  columns: ColumnMap;
  labels: LabelMap;
  /** 'csv' or 'jsonl'; by default from the extension (.jsonl/.ndjson → jsonl, else csv). */
  format?: 'csv' | 'jsonl';
  /** Any encoding iconv-lite knows: 'utf-8' (default), 'latin1', 'windows-1252', … */
  encoding?: string;
  delimiter?: string;
  /** How many malformed rows to keep as examples (default 10). */
  maxExamples?: number;
  /** Called every `progressEvery` rows (default 20,000) and at the end. */
  onProgress?: (p: { file: string; rowsRead: number; rowsKept: number; malformed: number }) => void;
  progressEvery?: number;
}

export interface TableDataset extends RelevanceDataset {
  report: LoadReport;
}

/** Column maps of the public sets the project tests with. */
export const TABLE_PRESETS: Readonly<Record<string, { columns: ColumnMap; encoding: string }>> = {
  homedepot: {
    columns: { query: 'search_term', productId: 'product_uid', title: 'product_title', label: 'relevance' },
    encoding: 'latin1',
  },
  crowdflower: {
    columns: { query: 'query', title: 'product_title', description: 'product_description', label: 'median_relevance' },
    encoding: 'utf-8',
  },
};

function detectFormat(path: string): 'csv' | 'jsonl' {
  return /\.(jsonl|ndjson)$/i.test(path) ? 'jsonl' : 'csv';
}

function openText(path: string, encoding: string): NodeJS.ReadableStream {
  const raw = createReadStream(path);
  const norm = encoding.toLowerCase().replace(/[^a-z0-9]/g, '');
  if (norm === 'utf8') {
    raw.setEncoding('utf8');
    return raw;
  }
  return raw.pipe(iconv.decodeStream(encoding));
}

function clip(s: string, n = 160): string {
  const one = s.replace(/\s+/g, ' ').trim();
  return one.length > n ? `${one.slice(0, n)}…` : one;
}

/** A row, by column name, from either format. */
type Row = (name: string) => string | undefined;

class TableBuilder {
  readonly products = new Map<string, Product>();
  readonly judgements: Judgement[] = [];
  readonly report: LoadReport;
  /** Set when records say "synthetic": true (files written by the synthetic generator). */
  synthetic = false;
  private readonly maxExamples: number;
  private readonly c: ColumnMap;

  constructor(private readonly options: TableOptions) {
    this.report = { file: options.path, rowsRead: 0, rowsKept: 0, rowsFiltered: 0, malformed: 0, malformedExamples: [] };
    this.maxExamples = options.maxExamples ?? 10;
    this.c = options.columns;
  }

  malformed(line: number, reason: string, raw?: string): void {
    this.report.malformed++;
    if (this.report.malformedExamples.length < this.maxExamples) {
      this.report.malformedExamples.push(raw === undefined ? { line, reason } : { line, reason, raw: clip(raw) });
    }
  }

  add(line: number, get: Row, raw: () => string): void {
    const c = this.c;
    const query = get(c.query)?.trim();
    if (!query) return this.malformed(line, `empty "${c.query}" (query)`, raw());
    const title = c.title ? (get(c.title)?.trim() ?? '') : '';
    const productId = c.productId ? get(c.productId)?.trim() : title;
    if (!productId) return this.malformed(line, c.productId ? `empty "${c.productId}" (product id)` : `empty "${c.title ?? '?'}" (title, used as product id)`, raw());
    const mapped = applyLabelMap(this.options.labels, get(c.label) ?? '');
    if (typeof mapped === 'string') return this.malformed(line, `column "${c.label}": ${mapped}`, raw());

    const judgement: Judgement = { query, productId, label: mapped.label, gain: mapped.gain };
    const queryId = c.queryId ? get(c.queryId)?.trim() : undefined;
    if (queryId) judgement.queryId = queryId;
    const split = c.split ? get(c.split)?.trim() : undefined;
    if (split) judgement.split = split;
    this.judgements.push(judgement);
    this.report.rowsKept++;

    if (!this.products.has(productId)) {
      const product: Product = { id: productId, title };
      const brand = c.brand ? get(c.brand)?.trim() : undefined;
      const color = c.color ? get(c.color)?.trim() : undefined;
      const description = c.description ? get(c.description)?.trim() : undefined;
      if (brand) product.brand = brand;
      if (color) product.color = color;
      if (description) product.description = description;
      if (c.extra?.length) {
        product.fields = {};
        for (const name of c.extra) product.fields[name] = get(name) ?? '';
      }
      this.products.set(productId, product);
    }
  }

  progress(final = false): void {
    const every = this.options.progressEvery ?? 20_000;
    if (final || this.report.rowsRead % every === 0) {
      this.options.onProgress?.({ file: this.options.path, rowsRead: this.report.rowsRead, rowsKept: this.report.rowsKept, malformed: this.report.malformed });
    }
  }

  dataset(): TableDataset {
    const splits = [...new Set(this.judgements.map((j) => j.split).filter((s): s is string => s !== undefined))].sort();
    const out: TableDataset = { source: this.options.path, products: this.products, judgements: this.judgements, report: this.report };
    if (splits.length) out.split = splits;
    if (this.synthetic) out.synthetic = true;
    return out;
  }
}

function requiredColumns(c: ColumnMap): Array<[string, string]> {
  const out: Array<[string, string]> = [['query', c.query], ['label', c.label]];
  for (const key of ['productId', 'title', 'queryId', 'split', 'brand', 'color', 'description'] as const) {
    const name = c[key];
    if (name) out.push([key, name]);
  }
  for (const name of c.extra ?? []) out.push(['extra', name]);
  return out;
}

function checkColumns(path: string, found: string[], c: ColumnMap): void {
  const have = new Set(found);
  for (const [role, name] of requiredColumns(c)) {
    if (!have.has(name)) {
      throw new MinielmError('MINIELM_BAD_FILE', `${path}: no column "${name}" (mapped as ${role}); found: ${found.join(', ') || '(none)'}. Fix the column map (e.g. --${role === 'productId' ? 'product-id' : role}-column).`);
    }
  }
}

async function loadCsv(options: TableOptions, b: TableBuilder): Promise<void> {
  const parser = parse({
    bom: true,
    delimiter: options.delimiter ?? ',',
    relax_column_count: true,
    relax_quotes: false,
    skip_empty_lines: true,
    skip_records_with_error: true,
    info: true,
    raw: true,
    on_skip: (err, raw) => {
      b.report.rowsRead++;
      b.malformed((err as { lines?: number } | undefined)?.lines ?? parser.info.lines, `CSV syntax: ${err?.message ?? 'unparseable record'}`, raw ?? '');
      return undefined;
    },
  });
  const input = openText(options.path, options.encoding ?? 'utf-8');
  input.on('error', (err) => parser.destroy(err));
  input.pipe(parser);
  let header: string[] | undefined;
  let index = new Map<string, number>();
  for await (const rec of parser as AsyncIterable<{ record: string[]; info: { lines: number }; raw: string }>) {
    if (!header) {
      header = rec.record.map((h) => h.trim());
      checkColumns(options.path, header, options.columns);
      index = new Map(header.map((h, i) => [h, i]));
      continue;
    }
    b.report.rowsRead++;
    const line = rec.info.lines;
    if (rec.record.length !== header.length) {
      b.malformed(line, `${rec.record.length} fields, header has ${header.length}`, rec.raw);
    } else {
      const fields = rec.record;
      b.add(line, (name) => {
        const i = index.get(name);
        return i === undefined ? undefined : fields[i];
      }, () => rec.raw);
    }
    b.progress();
  }
  if (!header) throw new MinielmError('MINIELM_BAD_FILE', `${options.path}: empty file, no header line. A CSV relevance table needs a header naming its columns.`);
}

async function loadJsonl(options: TableOptions, b: TableBuilder): Promise<void> {
  const input = openText(options.path, options.encoding ?? 'utf-8');
  const lines = createInterface({ input, crlfDelay: Infinity });
  let lineNo = 0;
  let checked = false;
  for await (const text of lines) {
    lineNo++;
    if (!text.trim()) continue;
    b.report.rowsRead++;
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (err) {
      b.malformed(lineNo, `not JSON (${(err as Error).message})`, text);
      b.progress();
      continue;
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
      b.malformed(lineNo, 'not a JSON object', text);
      b.progress();
      continue;
    }
    const record = obj as Record<string, unknown>;
    if (record.synthetic === true) b.synthetic = true;
    if (!checked) {
      // The first object stands for the header: a column missing there is a column-map mistake, not a bad row.
      checkColumns(options.path, Object.keys(record), options.columns);
      checked = true;
    }
    b.add(lineNo, (name) => {
      const v = record[name];
      return v === undefined || v === null ? undefined : typeof v === 'string' ? v : String(v);
    }, () => text);
    b.progress();
  }
}

/** The judged products of one query. */
export interface JudgedQuery {
  query: string;
  /**
   * Product id -> its label on the source's own scale: for a graded label map min + gain * (max - min) (Home
   * Depot: the mean rater relevance, 1..3), otherwise the gain. A pair judged more than once keeps the mean.
   */
  judgements: Map<string, number>;
}

/** Judgements grouped by query text, queries and products in the order they first appear. */
export function judgedQueries(judgements: readonly Judgement[], labels?: LabelMap): JudgedQuery[] {
  const scale = labels?.kind === 'graded' ? labels : undefined;
  const byQuery = new Map<string, Map<string, { sum: number; n: number }>>();
  for (const j of judgements) {
    const value = scale ? scale.min + j.gain * (scale.max - scale.min) : j.gain;
    let judged = byQuery.get(j.query);
    if (!judged) byQuery.set(j.query, (judged = new Map()));
    const seen = judged.get(j.productId);
    if (seen) {
      seen.sum += value;
      seen.n++;
    } else {
      judged.set(j.productId, { sum: value, n: 1 });
    }
  }
  return [...byQuery].map(([query, judged]) => ({ query, judgements: new Map([...judged].map(([id, { sum, n }]) => [id, n === 1 ? sum : sum / n])) }));
}

const COLUMN_KEYS = ['query', 'label', 'productId', 'title', 'queryId', 'split', 'brand', 'color', 'description'] as const;

/** Checks the options a caller passes before any file is opened: every mistake names the option and the fix. */
function validateTableOptions(options: TableOptions): void {
  const bad = (msg: string) => new MinielmError('MINIELM_INVALID_ARGUMENT', `loadRelevanceTable: ${msg}`);
  if (options === null || typeof options !== 'object') throw bad(`options must be an object {path, columns, labels, ...}, got ${describeValue(options)}`);
  if (typeof options.path !== 'string' || options.path.length === 0) throw bad(`path must be the path of a CSV or JSONL file, got ${describeValue(options.path)}`);
  const c = options.columns as unknown as Record<string, unknown> | null;
  if (c === null || typeof c !== 'object') throw bad(`columns must be a column map such as {query: 'search_term', label: 'relevance'}, got ${describeValue(c)}`);
  for (const key of COLUMN_KEYS) {
    const name = c[key];
    const required = key === 'query' || key === 'label';
    if ((required || name !== undefined) && (typeof name !== 'string' || name.length === 0))
      throw bad(`columns.${key} must ${required ? 'be' : 'be left out or be'} the name of a column, got ${describeValue(name)}`);
  }
  if (c.extra !== undefined && (!Array.isArray(c.extra) || !c.extra.every((x) => typeof x === 'string' && x.length > 0)))
    throw bad(`columns.extra must be an array of column names, got ${describeValue(c.extra)}`);
  if (options.format !== undefined && options.format !== 'csv' && options.format !== 'jsonl') throw bad(`format must be 'csv' or 'jsonl', got ${describeValue(options.format)}`);
  if (options.encoding !== undefined && (typeof options.encoding !== 'string' || options.encoding.length === 0))
    throw bad(`encoding must be the name of an encoding ('utf-8', 'latin1', 'windows-1252', ...), got ${describeValue(options.encoding)}`);
  const d = options.delimiter;
  if (d !== undefined && (typeof d !== 'string' || d.length === 0 || /["\r\n]/.test(d)))
    throw bad(`delimiter must be a non-empty string without quotes or line breaks (',' ';' '\\t' ...), got ${describeValue(d)}`);
  if (options.maxExamples !== undefined && !(Number.isSafeInteger(options.maxExamples) && options.maxExamples >= 0))
    throw bad(`maxExamples must be an integer >= 0, got ${describeValue(options.maxExamples)}`);
  if (options.progressEvery !== undefined && !(Number.isSafeInteger(options.progressEvery) && options.progressEvery > 0))
    throw bad(`progressEvery must be a positive integer, got ${describeValue(options.progressEvery)}`);
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw bad(`onProgress must be a function, got ${describeValue(options.onProgress)}`);
}

/** Loads a relevance table into judgements and products. */
export async function loadRelevanceTable(options: TableOptions): Promise<TableDataset> {
  validateTableOptions(options);
  validateLabelMap(options.labels, `label map for ${options.path}`);
  if (options.encoding && !iconv.encodingExists(options.encoding)) {
    throw new MinielmError('MINIELM_INVALID_ARGUMENT', `unknown encoding "${options.encoding}" for ${options.path}. Use utf-8, latin1, windows-1252, …`);
  }
  try {
    const s = await stat(options.path);
    if (!s.isFile()) throw new Error('not a file');
  } catch {
    throw new MinielmError('MINIELM_NOT_FOUND', `${options.path}: no such file. Pass the path of a CSV or JSONL relevance table.`);
  }
  const builder = new TableBuilder(options);
  const format = options.format ?? detectFormat(options.path);
  try {
    if (format === 'jsonl') await loadJsonl(options, builder);
    else await loadCsv(options, builder);
  } catch (err) {
    if (err instanceof MinielmError) throw err;
    throw new MinielmError('MINIELM_BAD_FILE', `${options.path}: cannot read as ${format} (${(err as Error).message}).`, { cause: err });
  }
  builder.progress(true);
  return builder.dataset();
}
