// Properties over the readers of files a user hands minielm: the safetensors parser (random and mutated
// bytes), tokenizer folders (corrupted tokenizer.json / tokenizer_config.json / special_tokens_map.json),
// the tokenizer's encode / decode on arbitrary text and ids, and the relevance-table loaders (CSV, JSONL and
// the ESCI parquet files) on garbage content and hostile options.
import fc from 'fast-check';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import type { SchemaElement } from 'hyparquet';
import { parseSafetensors } from '../../lib/model/safetensors.ts';
import { Tokenizer } from '../../lib/tokenizer/tokenizer.ts';
import { loadRelevanceTable } from '../../lib/data/table.ts';
import { loadEsci } from '../../lib/data/esci.ts';
import { HOMEDEPOT_LABELS, ESCI_LABELS } from '../../lib/data/labels.ts';
import { byteMutations, edgeNumber, edgeString, hostileValue, mostly, mutateBytes, options, tokenIds, arrayOf } from './arbitraries.ts';
import { checkpointFiles, scratch, tinyTokenizer, tinyTokenizerFiles, TINY } from './fixtures.ts';
import { KnownBug, runProperty, type FuzzProperty } from './harness.ts';
import { MinielmError, type MinielmErrorCode } from '../../lib/errors.ts';
import type { EsciReply, EsciRequest } from './esci-child.ts';
import { fileBytes, jsonFileSpec, safetensorsSpec, writeSpec } from './model.ts';

// ---- safetensors ----

export const fuzzSafetensors: FuzzProperty = async (runs, o) => {
  const { weights, trainingState } = await checkpointFiles(TINY);
  const input = fc.oneof(
    { arbitrary: fc.tuple(fc.constantFrom('weights', 'state'), safetensorsSpec).map(([which, spec]) => ({ which, spec, random: undefined as Uint8Array | undefined })), weight: 8 },
    { arbitrary: fc.uint8Array({ maxLength: 256 }).map((random) => ({ which: 'weights', spec: { kind: 'valid' as const }, random })), weight: 1 },
    { arbitrary: fc.tuple(fc.bigInt({ min: 0n, max: 300n }), fc.uint8Array({ maxLength: 300 })).map(([n, rest]) => {
      // A plausible header length in front of random bytes: the JSON parser, not the length check, meets them.
      const random = new Uint8Array(8 + rest.length);
      new DataView(random.buffer).setBigUint64(0, n, true);
      random.set(rest, 8);
      return { which: 'weights', spec: { kind: 'valid' as const }, random };
    }), weight: 1 },
  );
  return runProperty({
    entry: 'parseSafetensors',
    arbitrary: input,
    call: ({ which, spec, random }) => {
      const bytes = random ?? fileBytes(which === 'state' ? trainingState : weights, spec, false);
      if (typeof bytes === 'string') return parseSafetensors(new Uint8Array(0), `${spec.kind}.safetensors`);
      return parseSafetensors(bytes, 'fuzz.safetensors');
    },
    codes: ['MINIELM_BAD_FILE'],
    check: (out) => {
      const f = out as ReturnType<typeof parseSafetensors>;
      for (const [name, t] of f.tensors) {
        const n = t.shape.reduce((a, b) => a * b, 1);
        if (t.data.length !== n) return `tensor "${name}" has ${t.data.length} values for shape [${t.shape.join(', ')}]`;
      }
      return undefined;
    },
    sanity: async () => {
      const f = parseSafetensors(weights, 'valid.safetensors');
      if (!f.tensors.has('wte.weight')) throw new Error('the valid checkpoint lost wte.weight');
    },
  }, { runs, ...o });
};

// ---- tokenizer folders ----

export const fuzzTokenizerLoad: FuzzProperty = async (runs, o) => {
  const { tokenizerJson, config } = tinyTokenizerFiles();
  const files = {
    'tokenizer.json': Buffer.from(JSON.stringify(tokenizerJson)),
    'tokenizer_config.json': Buffer.from(JSON.stringify(config)),
    'special_tokens_map.json': Buffer.from(JSON.stringify({ eos_token: '<|endoftext|>', sep_token: '<|sep|>' })),
  };
  const dir = join(await scratch(), 'tokenizer');
  await mkdir(dir, { recursive: true });
  const texts = fc.array(fc.oneof(edgeString, fc.string({ maxLength: 30 })), { maxLength: 2 });
  return runProperty({
    entry: 'Tokenizer.load',
    arbitrary: fc.record({
      tokenizer: jsonFileSpec,
      config: fc.option(jsonFileSpec, { nil: undefined }),
      map: fc.option(jsonFileSpec, { nil: undefined }),
      dir: fc.oneof({ arbitrary: fc.constant('folder' as unknown), weight: 20 }, { arbitrary: hostileValue, weight: 1 }),
      texts,
      ids: fc.array(tokenIds(300, 6), { maxLength: 2 }),
    }),
    call: async (input) => {
      await writeSpec(join(dir, 'tokenizer.json'), fileBytes(files['tokenizer.json'], input.tokenizer, true));
      await writeSpec(join(dir, 'tokenizer_config.json'), input.config ? fileBytes(files['tokenizer_config.json'], input.config, true) : 'missing');
      await writeSpec(join(dir, 'special_tokens_map.json'), input.map ? fileBytes(files['special_tokens_map.json'], input.map, true) : 'missing');
      const t = await Tokenizer.load((input.dir === 'folder' ? dir : input.dir) as string);
      // A folder that loads must also encode and decode (or refuse with a MinielmError).
      for (const text of input.texts) t.encodePair(text, text);
      for (const ids of input.ids) {
        try {
          t.decode(ids as number[]);
        } catch (err) {
          if ((err as { code?: string }).code !== 'MINIELM_INVALID_ARGUMENT') throw err;
        }
      }
      return t;
    },
    sanity: async () => {
      for (const [name, bytes] of Object.entries(files)) await writeFile(join(dir, name), bytes);
      const t = await Tokenizer.load(dir);
      if (t.decode(t.encode('red drill')) !== 'red drill') throw new Error('the valid tokenizer does not round-trip "red drill"');
    },
  }, { runs, ...o });
};

// ---- encode / decode ----

/** No unpaired surrogate (String#isWellFormed, which the project's TypeScript lib does not declare yet). */
function wellFormed(s: string): boolean {
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

export const fuzzTokenizerCodec: FuzzProperty = async (runs, o) => {
  const t = tinyTokenizer();
  const text = fc.oneof({ arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }), weight: 3 }, { arbitrary: fc.string({ unit: 'binary', maxLength: 40 }), weight: 2 }, { arbitrary: edgeString, weight: 2 }, { arbitrary: hostileValue, weight: 1 });
  const ids = fc.oneof({ arbitrary: tokenIds(t.vocabSize, 12), weight: 6 }, { arbitrary: arrayOf(fc.integer({ min: 0, max: t.vocabSize - 1 }), edgeNumber, 0, 12), weight: 1 });
  return runProperty({
    entry: 'tokenizer.encode/decode',
    arbitrary: fc.oneof(
      { arbitrary: fc.tuple(fc.constant('encode' as const), text, fc.constant(undefined)), weight: 4 },
      { arbitrary: fc.tuple(fc.constant('decode' as const), ids, fc.oneof(fc.constant(undefined), options({ skipSpecialTokens: fc.boolean() }))), weight: 4 },
      { arbitrary: fc.tuple(fc.constant('encodeBatch' as const), mostly(fc.array(text, { maxLength: 3 }), hostileValue, 6), fc.constant(undefined)), weight: 1 },
      { arbitrary: fc.tuple(fc.constant('encodePair' as const), text, text), weight: 1 },
    ),
    call: ([method, a, b]) => {
      if (method === 'encode') {
        const out = t.encode(a as string);
        // Byte-level BPE is lossless on well-formed text.
        if (wellFormed(a as string) && t.decode(out) !== a) throw new Error(`decode(encode(s)) !== s for ${JSON.stringify(a)}`);
        return out;
      }
      if (method === 'decode') return t.decode(a as number[], b as never);
      if (method === 'encodeBatch') return t.encodeBatch(a as string[]);
      return t.encodePair(a as string, b as string);
    },
    check: (out) => {
      const lists = Array.isArray(out) && Array.isArray(out[0]) ? (out as number[][]) : Array.isArray(out) ? [out as number[]] : out && typeof out === 'object' ? [(out as { ids: number[] }).ids] : [];
      for (const l of lists) for (const id of l) if (!Number.isInteger(id) || id < 0 || id >= t.vocabSize) return `id ${id} outside the vocabulary`;
      return undefined;
    },
    sanity: async () => {
      if (t.decode(t.encode('red lamp')) !== 'red lamp') throw new Error('"red lamp" does not round-trip');
    },
  }, { runs, ...o });
};

// ---- relevance tables (CSV / JSONL) ----

const cell = fc.oneof(
  { arbitrary: fc.constantFrom('red drill', 'lamp', '2.5', '3', '1', 'E', 'S', 'exact', 'p1', 'p2', ''), weight: 6 },
  { arbitrary: fc.string({ maxLength: 12 }), weight: 2 },
  { arbitrary: fc.constantFrom('"', '""', '"a,b"', 'a"b', '\n', '\r\n', ',', ';', '\t', '\u0000', '\ufeff', '\ud800', '1e999', '-1'), weight: 2 },
);
const COLUMNS = ['query', 'title', 'product_id', 'label', 'split', 'brand'];

const csvText = fc.tuple(
  fc.oneof({ arbitrary: fc.constant(COLUMNS), weight: 6 }, { arbitrary: fc.shuffledSubarray(COLUMNS), weight: 2 }, { arbitrary: fc.array(cell, { maxLength: 6 }), weight: 1 }),
  fc.array(fc.array(cell, { minLength: 0, maxLength: 7 }), { maxLength: 8 }),
  fc.constantFrom(',', ';', '\t'),
  fc.constantFrom('\n', '\r\n', '\r'),
).map(([header, rows, sep, eol]) => [header, ...rows].map((r) => r.join(sep)).join(eol));

const jsonlText = fc.array(fc.oneof(
  { arbitrary: fc.record({ query: cell, title: cell, product_id: cell, label: fc.oneof(cell, edgeNumber), split: cell }, { requiredKeys: [] }).map((r) => JSON.stringify(r)), weight: 6 },
  { arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v) ?? ''), weight: 1 },
  { arbitrary: fc.string({ maxLength: 30 }), weight: 1 },
), { maxLength: 8 }).map((lines) => lines.join('\n'));

const tableFile: fc.Arbitrary<[string, Uint8Array]> = fc.oneof(
  { arbitrary: fc.tuple(fc.constant('table.csv'), csvText.map((t) => new Uint8Array(Buffer.from(t)))), weight: 5 },
  { arbitrary: fc.tuple(fc.constant('table.jsonl'), jsonlText.map((t) => new Uint8Array(Buffer.from(t)))), weight: 5 },
  { arbitrary: fc.tuple(fc.constantFrom('table.csv', 'table.jsonl'), fc.tuple(fc.oneof(csvText, jsonlText), byteMutations).map(([t, m]) => mutateBytes(Buffer.from(t), m))), weight: 3 },
  { arbitrary: fc.tuple(fc.constantFrom('table.csv', 'table.jsonl', 'table.txt'), fc.uint8Array({ maxLength: 200 })), weight: 1 },
);

const columnMap = options({
  query: fc.constantFrom('query', 'title', 'missing'),
  label: fc.constantFrom('label', 'query'),
  productId: fc.constantFrom('product_id', 'title'),
  title: fc.constant('title'),
  split: fc.constant('split'),
  brand: fc.constant('brand'),
  extra: fc.subarray(COLUMNS),
}, true, ['query', 'label']);

const labelMap = fc.oneof(
  { arbitrary: fc.constantFrom(HOMEDEPOT_LABELS, ESCI_LABELS, { kind: 'categorical', table: { E: { label: 'E', gain: 1 }, '1': { label: 'I', gain: 0 } } }), weight: 8 },
  { arbitrary: options({ kind: fc.constantFrom('graded', 'esci', 'categorical', 'ordinal'), min: edgeNumber, max: edgeNumber, thresholds: options({ E: edgeNumber, S: edgeNumber, C: edgeNumber }), gains: hostileValue, table: hostileValue }), weight: 1 },
);

export const fuzzTable: FuzzProperty = async (runs, o) => {
  const dir = join(await scratch(), 'tables');
  await mkdir(join(dir, 'a-folder.csv'), { recursive: true });
  return runProperty({
    entry: 'loadRelevanceTable',
    arbitrary: fc.record({
      file: tableFile,
      path: fc.oneof({ arbitrary: fc.constant('file' as unknown), weight: 20 }, { arbitrary: fc.constantFrom('missing.csv', 'a-folder.csv'), weight: 1 }, { arbitrary: hostileValue, weight: 1 }),
      options: options({
        columns: columnMap,
        labels: labelMap,
        format: fc.constantFrom('csv', 'jsonl'),
        encoding: fc.constantFrom('utf-8', 'utf8', 'latin1', 'windows-1252', 'utf-16le', 'UTF-8', 'shift_jis', 'ebcdic'),
        delimiter: fc.constantFrom(',', ';', '\t', '|', '||'),
        maxExamples: fc.nat({ max: 20 }),
        onProgress: fc.constant(() => undefined),
        progressEvery: fc.integer({ min: 1, max: 5 }),
      }, true, ['columns', 'labels']),
    }),
    call: async ({ file: [name, bytes], path, options: opts }) => {
      const full = join(dir, name);
      await writeFile(full, bytes);
      const p = path === 'file' ? full : typeof path === 'string' ? join(dir, path) : path;
      const table = opts && typeof opts === 'object' && !Array.isArray(opts) ? { ...opts, path: p } : opts;
      return loadRelevanceTable(table as never);
    },
    sanity: async () => {
      const full = join(dir, 'valid.csv');
      await writeFile(full, 'query,title,label\nred drill,Red Drill,3\n');
      const t = await loadRelevanceTable({ path: full, columns: { query: 'query', title: 'title', label: 'label' }, labels: HOMEDEPOT_LABELS });
      if (t.judgements.length !== 1) throw new Error('the valid one-row table did not give one judgement');
    },
  }, { runs, ...o });
};

// ---- ESCI parquet ----

const str = (name: string): SchemaElement => ({ name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' });
const int = (name: string): SchemaElement => ({ name, type: 'INT64', repetition_type: 'OPTIONAL' });

function parquetBytes(columns: [SchemaElement, unknown[]][], rowGroupSize: number): Uint8Array {
  return new Uint8Array(parquetWriteBuffer({
    schema: [{ name: 'schema', num_children: columns.length }, ...columns.map(([s]) => s)],
    columnData: columns.map(([s, data]) => ({ name: s.name, data })),
    rowGroupSize,
  }));
}

export function esciFiles(): { examples: Uint8Array; products: Uint8Array } {
  const rows = [
    [0, 'red shoes', 1, 'P1', 'us', 'E', 1, 1, 'train'],
    [1, 'red shoes', 1, 'P2', 'us', 'S', 1, 1, 'train'],
    [2, 'zapatos', 2, 'P1', 'es', 'E', 1, 1, 'train'],
    [3, 'blue lamp', 3, 'P3', 'us', 'X', 0, 1, 'test'],
  ] as const;
  const names = ['example_id', 'query', 'query_id', 'product_id', 'product_locale', 'esci_label', 'small_version', 'large_version', 'split'];
  const ints = new Set([0, 2, 6, 7]);
  const examples = parquetBytes(names.map((n, i) => [ints.has(i) ? int(n) : str(n), rows.map((r) => (ints.has(i) ? BigInt(r[i] as number) : r[i]))]), 2);
  const productNames = ['product_id', 'product_title', 'product_description', 'product_bullet_point', 'product_brand', 'product_color', 'product_locale'];
  const products = parquetBytes(productNames.map((n, i) => [str(n), ['P1', 'P2', 'P3'].map((id) => (i === 0 ? id : i === 6 ? 'us' : `${n} ${id}`))]), 2);
  return { examples, products };
}

const esciOptions = options({
  locale: fc.constantFrom('us', 'es', 'jp', 'all'),
  split: fc.constantFrom('train', 'test', 'all'),
  version: fc.constantFrom('small', 'large', 'all'),
  gains: options({ E: fc.double({ min: 0, max: 1, noNaN: true }), S: fc.constantFrom(0, 0.1, 1) }),
  productText: fc.boolean(),
  onlyJudgedProducts: fc.boolean(),
  windowRows: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.constant(262_144)),
  onProgress: fc.constant(() => undefined),
});

/** loadEsci's options (hostile values of every type) over the valid files or a missing one. */
export const fuzzEsciOptions: FuzzProperty = async (runs, o) => {
  const files = esciFiles();
  const dir = join(await scratch(), 'esci');
  await mkdir(dir, { recursive: true });
  const examplesPath = join(dir, 'examples.parquet');
  const productsPath = join(dir, 'products.parquet');
  await writeFile(examplesPath, files.examples);
  await writeFile(productsPath, files.products);
  const path = fc.oneof({ arbitrary: fc.constant('file' as unknown), weight: 20 }, { arbitrary: fc.constant('missing' as unknown), weight: 1 }, { arbitrary: hostileValue, weight: 1 });
  return runProperty({
    entry: 'loadEsci.options',
    arbitrary: fc.record({ options: esciOptions, examples: path, products: fc.option(path, { nil: undefined }) }),
    call: ({ options: opts, examples, products }) => {
      const where = (p: unknown, file: string): unknown => (p === 'file' ? file : p === 'missing' ? join(dir, 'missing.parquet') : p);
      if (!opts || typeof opts !== 'object' || Array.isArray(opts)) return loadEsci(opts as never);
      return loadEsci({ ...opts, examplesPath: where(examples, examplesPath), ...(products === undefined ? {} : { productsPath: where(products, productsPath) }) } as never);
    },
    sanity: async () => {
      const d = await loadEsci({ examplesPath, productsPath });
      if (d.judgements.length !== 2) throw new Error(`the valid ESCI file gave ${d.judgements.length} us judgements, not 2`);
    },
  }, { runs, ...o });
};

/** A tiny file decodes in milliseconds: one that takes this long has met the decoder loop. */
const HANG_MS = 5_000;

/** Answers a loadEsci call within `timeoutMs`, or kills the child and says the decoder hung. */
class EsciChild {
  #child: ChildProcess | null = null;
  #ready: Promise<void> | null = null;
  #next = 0;
  #pending = new Map<number, (reply: EsciReply) => void>();

  #start(): Promise<void> {
    const child = fork(fileURLToPath(new URL('./esci-child.ts', import.meta.url)), [], { execArgv: ['--import', 'tsx'], serialization: 'advanced', stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    this.#child = child;
    this.#ready = new Promise((resolve, reject) => {
      child.once('error', reject);
      child.on('message', (m) => {
        const reply = m as EsciReply;
        if (reply.id === -1) return resolve();
        this.#pending.get(reply.id)?.(reply);
        this.#pending.delete(reply.id);
      });
    });
    child.once('exit', () => {
      if (this.#child === child) this.#child = null;
    });
    return this.#ready;
  }

  async load(req: Omit<EsciRequest, 'id'>, timeoutMs: number): Promise<EsciReply | 'hung'> {
    if (!this.#child) await this.#start();
    else await this.#ready;
    const id = this.#next++;
    const child = this.#child!;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const reply = await Promise.race([
      new Promise<EsciReply>((resolve) => {
        this.#pending.set(id, resolve);
        child.send({ ...req, id });
      }),
      new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (reply === 'hung') {
      this.#pending.delete(id);
      child.kill('SIGKILL');
      this.#child = null;
    }
    return reply;
  }

  close(): void {
    this.#child?.disconnect();
    this.#child = null;
  }
}

/**
 * loadEsci on corrupted parquet bytes, run in a child process: hyparquet's decoder can loop for minutes on a
 * corrupted data page, which no code of ours gets to interrupt (third-party, see esci-child.ts).
 */
export const fuzzEsciParquet: FuzzProperty = async (runs, o) => {
  const files = esciFiles();
  const child = new EsciChild();
  let hangs = 0;
  const parquet = (valid: Uint8Array): fc.Arbitrary<Uint8Array | 'missing'> => fc.oneof(
    { arbitrary: fc.constant(valid), weight: 1 },
    { arbitrary: byteMutations.map((m) => mutateBytes(valid, m)), weight: 8 },
    // Keep the magic at both ends so the reader gets past the first check.
    { arbitrary: fc.uint8Array({ maxLength: 120 }).map((b) => new Uint8Array([...Buffer.from('PAR1'), ...b, ...Buffer.from('PAR1')])), weight: 1 },
  );
  const plainOptions = fc.record({
    locale: fc.constantFrom('us', 'es', 'all'),
    split: fc.constantFrom('train', 'test', 'all'),
    version: fc.constantFrom('small', 'large', 'all'),
    productText: fc.boolean(),
    windowRows: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.constant(262_144)),
    onProgress: fc.boolean(),
  }, { requiredKeys: [] });
  try {
    return await runProperty({
      entry: 'loadEsci.parquet',
      arbitrary: fc.record({ examples: parquet(files.examples), products: fc.option(parquet(files.products), { nil: undefined }), options: plainOptions }),
      call: async (req) => {
        const reply = await child.load(req, HANG_MS);
        if (reply === 'hung') {
          // Kept for a bug report or a regression test: build-fuzz/esci-hangs/<n>-examples.parquet (+ products).
          const out = join(process.cwd(), 'build-fuzz', 'esci-hangs');
          await mkdir(out, { recursive: true });
          const n = hangs++;
          if (n < 5) {
            if (req.examples !== 'missing') await writeFile(join(out, `${n}-examples.parquet`), req.examples);
            if (req.products && req.products !== 'missing') await writeFile(join(out, `${n}-products.parquet`), req.products);
            await writeFile(join(out, `${n}-options.json`), JSON.stringify(req.options));
          }
          throw new KnownBug('third-party', 'hyparquet-rle-run-hang', `hyparquet did not finish decoding the corrupted file within ${HANG_MS / 1000} s (readRleBitPackedHybrid: an RLE run longer than its page)`);
        }
        if (reply.ok) return reply.judgements;
        if (reply.code) throw new MinielmError(reply.code as MinielmErrorCode, reply.message);
        throw Object.assign(new Error(`${reply.name}: ${reply.message}`), { stack: reply.stack });
      },
      sanity: async () => {
        const reply = await child.load({ examples: files.examples, options: {} }, HANG_MS);
        if (reply === 'hung' || !reply.ok || reply.judgements !== 2) throw new Error(`the valid ESCI file did not give 2 judgements in the child: ${JSON.stringify(reply)}`);
      },
      timeoutMs: 30_000,
    }, { runs, ...o });
  } finally {
    child.close();
  }
};
