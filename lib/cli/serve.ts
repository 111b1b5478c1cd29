// `minielm serve`: a trained rewriter over HTTP (lib/serve/http.ts) until SIGTERM or Ctrl-C, which stop it
// gracefully: new requests are refused, those in flight are answered, then the model is freed.
import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { MinielmError, invalidArgument } from '../errors.ts';
import { Rewriter, type RewriterOptions } from '../serve/rewriter.ts';
import { startRewriteServer, type RewriteServerOptions } from '../serve/http.ts';
import { LearnedRelevanceScorer } from '../rewards/learned.ts';
import { Bm25Retriever, MeilisearchRetriever, readHomeDepot, HOMEDEPOT_TRAIN_CSV, type Product, type Retriever } from '../retrieval/index.ts';

export const help = `Usage: minielm serve --model DIR [options]

Serves a trained rewriter: POST /v1/rewrite, POST /v1/expand (with a catalog), GET /healthz, GET /metrics
(Prometheus), and a playground page at GET /. SIGTERM or Ctrl-C stops it gracefully.

  --model DIR             a trained folder (config.json, model.safetensors, tokenizer.json), e.g. <run>/online/best
  --host HOST             (default 127.0.0.1)           --port N   (default 8080; 0 picks a free port)
  --catalog FILE          products for POST /v1/expand, indexed with BM25: homedepot (${HOMEDEPOT_TRAIN_CSV}),
                          a CSV in Home Depot columns, a .jsonl of {"id", "title"} lines, or a .json array of them
  --meilisearch-url URL   use a Meilisearch index for expand instead (MEILISEARCH_API_KEY is its key)
  --meilisearch-index UID (default minielm-products)
  --catalog-words         rewrites may only use words of the catalog's titles (and its queries)
  --relevance-model DIR   a scorer from "minielm relevance train" (with --catalog): enables "select":
                          "relevance" on /v1/expand (the rewrites whose new products it rates most relevant)
  --weights W             auto (default: bf16 on CPUs with AMX, else fp32) | fp32 | bf16
  --threads N             native threads (default all cores)
  --device cpu|cuda[:N]   where the model decodes (default cpu; cuda needs a CUDA build: npm run build:cmake)
  --max-batch N           sequences per native decode (default 256; 1 turns micro-batching off)
  --max-wait-ms X         how long a request waits for others to batch with (default 2)
  --cache-size N          cached rewrite lists (default 4096; 0 = off)
  --queue-limit N         requests waiting for the decoder before 503s (default 1024)
  --timeout-ms N          per-request timeout: 408 while the body arrives, 504 after (default 10000)
  --max-body-bytes N      (default 16384)    --max-queries N  per request (default 64)    --max-n N  (default 32)`;

type Values = Record<string, string | boolean | undefined>;

function intFlag(values: Values, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const raw = values[flag];
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (typeof raw !== 'string' || !Number.isInteger(v) || v < min || v > max) throw invalidArgument(`--${flag} must be an integer in [${min}, ${max}], got "${String(raw)}"`);
  return v;
}

function numberFlag(values: Values, flag: string, min: number): number | undefined {
  const raw = values[flag];
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(v) || v < min) throw invalidArgument(`--${flag} must be a number >= ${min}, got "${String(raw)}"`);
  return v;
}

/** The products (and, for a relevance table, its queries) of --catalog. */
export async function readCatalog(spec: string): Promise<{ products: Product[]; queries: string[] }> {
  if (spec === 'homedepot' || spec.toLowerCase().endsWith('.csv')) {
    const set = await readHomeDepot(spec === 'homedepot' ? HOMEDEPOT_TRAIN_CSV : spec);
    return { products: set.products, queries: set.queries.map((q) => q.query) };
  }
  if (!existsSync(spec)) throw new MinielmError('MINIELM_NOT_FOUND', `--catalog ${spec} does not exist: pass homedepot, a Home Depot CSV, or a .jsonl / .json file of products`);
  const text = await readFile(spec, 'utf8');
  let rows: unknown[];
  if (spec.toLowerCase().endsWith('.json')) {
    try {
      rows = JSON.parse(text) as unknown[];
    } catch (err) {
      throw new MinielmError('MINIELM_BAD_FILE', `--catalog ${spec} is not valid JSON (${(err as Error).message})`);
    }
    if (!Array.isArray(rows)) throw new MinielmError('MINIELM_BAD_FILE', `--catalog ${spec} must hold a JSON array of {"id", "title"} products`);
  } else if (spec.toLowerCase().endsWith('.jsonl')) {
    rows = text.split('\n').map((line, i) => {
      if (line.trim() === '') return null;
      try {
        return JSON.parse(line) as unknown;
      } catch {
        throw new MinielmError('MINIELM_BAD_FILE', `--catalog ${spec} line ${i + 1} is not valid JSON`);
      }
    }).filter((r) => r !== null);
  } else throw invalidArgument(`--catalog ${spec}: use homedepot, a .csv in Home Depot columns, a .jsonl or a .json file`);
  const products = rows.map((row, i) => {
    const p = row as Partial<Product> | null;
    const id = typeof p?.id === 'number' ? String(p.id) : p?.id;
    if (typeof id !== 'string' || id === '' || typeof p?.title !== 'string')
      throw new MinielmError('MINIELM_BAD_FILE', `--catalog ${spec}: product ${i + 1} needs a string "id" and a string "title"`);
    return { ...p, id, title: p.title } as Product;
  });
  if (products.length === 0) throw new MinielmError('MINIELM_BAD_FILE', `--catalog ${spec} holds no products`);
  return { products, queries: [] };
}

/** Resolves on the first SIGTERM or SIGINT. */
function stopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(signal);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '8080' },
      catalog: { type: 'string' }, 'meilisearch-url': { type: 'string' }, 'meilisearch-index': { type: 'string' }, 'catalog-words': { type: 'boolean' },
      weights: { type: 'string' }, threads: { type: 'string' }, device: { type: 'string' }, 'max-batch': { type: 'string' }, 'max-wait-ms': { type: 'string' },
      'cache-size': { type: 'string' }, 'queue-limit': { type: 'string' }, 'timeout-ms': { type: 'string' },
      'max-body-bytes': { type: 'string' }, 'max-queries': { type: 'string' }, 'max-n': { type: 'string' },
      'relevance-model': { type: 'string' },
    },
    strict: true,
  });
  if (!values.model) throw invalidArgument('--model DIR is required: a trained folder with config.json, model.safetensors and tokenizer.json');
  if (values.catalog && values['meilisearch-url']) throw invalidArgument('pass --catalog FILE or --meilisearch-url URL, not both');
  if (values['catalog-words'] && !values.catalog) throw invalidArgument('--catalog-words needs --catalog FILE (the words come from its titles)');
  if (values['relevance-model'] && !values.catalog) throw invalidArgument('--relevance-model needs --catalog FILE (the scorer reads the titles of the products it rates)');
  if (values.weights !== undefined && values.weights !== 'fp32' && values.weights !== 'bf16' && values.weights !== 'auto') throw invalidArgument(`--weights must be auto, fp32 or bf16, got "${values.weights}"`);
  const rewriterOptions: RewriterOptions = {
    weights: values.weights as 'fp32' | 'bf16' | 'auto' | undefined,
    device: values.device as RewriterOptions['device'],
    threads: intFlag(values, 'threads', 1, 1024),
    maxBatch: intFlag(values, 'max-batch', 1, 65536),
    maxWaitMs: numberFlag(values, 'max-wait-ms', 0),
    cacheSize: intFlag(values, 'cache-size', 0),
    queueLimit: intFlag(values, 'queue-limit', 1),
  };
  const serverOptions: RewriteServerOptions = {
    host: values.host,
    port: intFlag(values, 'port', 0, 65535),
    timeoutMs: intFlag(values, 'timeout-ms', 1),
    maxBodyBytes: intFlag(values, 'max-body-bytes', 1),
    maxQueries: intFlag(values, 'max-queries', 1),
    maxN: intFlag(values, 'max-n', 1),
  };
  for (const o of [rewriterOptions, serverOptions] as Record<string, unknown>[]) for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];

  let retriever: Retriever | undefined;
  if (values.catalog) {
    const catalog = await readCatalog(values.catalog);
    const bm25 = new Bm25Retriever();
    await bm25.index(catalog.products);
    retriever = bm25;
    serverOptions.products = catalog.products;
    if (values['catalog-words']) rewriterOptions.words = [...catalog.products.map((p) => p.title), ...catalog.queries];
    console.error(`minielm serve: indexed ${catalog.products.length} products from ${values.catalog} (BM25)`);
    if (values['relevance-model']) {
      serverOptions.relevance = await LearnedRelevanceScorer.load(values['relevance-model'], { catalogTitles: catalog.products.map((p) => p.title) });
      console.error(`minielm serve: "select": "relevance" rates new products with ${values['relevance-model']}`);
    }
  } else if (values['meilisearch-url']) {
    retriever = new MeilisearchRetriever({ url: values['meilisearch-url'], apiKey: process.env.MEILISEARCH_API_KEY, indexUid: values['meilisearch-index'] });
  }
  if (retriever) serverOptions.retriever = retriever;

  const rewriter = await Rewriter.load(values.model, rewriterOptions);
  const stopped = stopSignal();
  const server = await startRewriteServer(rewriter, serverOptions).catch(async (err: unknown) => {
    await rewriter.close();
    throw err;
  });
  console.log(`minielm serve: listening on ${server.url} (model ${values.model}${retriever ? ', expand on' : ''})`);
  const signal = await stopped;
  console.error(`minielm serve: ${signal}: finishing ${server.handler.inFlight} request(s) in flight, refusing new ones`);
  await server.shutdown();
  await rewriter.close();
  await retriever?.close?.();
  await (serverOptions.relevance as LearnedRelevanceScorer | undefined)?.dispose();
  console.error('minielm serve: stopped');
  return 0;
}
