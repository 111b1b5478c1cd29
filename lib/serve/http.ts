// The rewriter over HTTP (JSON in and out) as one (req, res[, next]) handler, so it plugs into node:http,
// Express or Fastify as well as into `minielm serve`. Every request a client can get wrong gets a 4xx whose
// body names the field and the fix; nothing a client sends can throw out of the handler.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { MinielmError, describeValue, invalidArgument, type MinielmErrorCode } from '../errors.ts';
import type { Retriever } from '../retrieval/types.ts';
import { InvalidOptionError, type Rewriter } from './rewriter.ts';
import { playgroundHtml } from './playground.ts';
import { DEFAULT_FRESH_CANDIDATES, DEFAULT_RELEVANCE_CANDIDATES } from '../rewrite/select.ts';
import type { RelevanceScorer } from '../rewards/relevance.ts';
import { FeedbackExpander } from '../rewrite/feedback.ts';

export interface RewriteHandlerOptions {
  /** Enables POST /v1/expand (and the products in the playground). */
  retriever?: Retriever;
  /** Titles shown beside product ids in /v1/expand answers. */
  products?: Iterable<{ id: string; title: string }>;
  /** Enables "select": "relevance" on /v1/expand: the scorer that rates new products against the query
   * (LearnedRelevanceScorer.load(dir)); the titles come from `products`. */
  relevance?: RelevanceScorer;
  /** Request body bytes at most (413 above). Default 16 KiB. */
  maxBodyBytes?: number;
  /** Queries in one /v1/rewrite request at most. Default 64. */
  maxQueries?: number;
  /** Rewrites per query at most. Default 32. */
  maxN?: number;
  /** Products per list in /v1/expand at most. Default 100. */
  maxK?: number;
  /** Characters per query at most. Default 512. */
  maxQueryLength?: number;
  /** A request not answered within this many ms gets 408 (body still arriving) or 504. Default 10,000. */
  timeoutMs?: number;
  /** prom-client registry the metrics go to. Default: a new one with the default process metrics. */
  registry?: Registry;
  /** Serve the playground page at GET /. Default true. */
  playground?: boolean;
}

export interface RewriteHandler {
  (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void;
  readonly registry: Registry;
  /** Requests being answered now. */
  readonly inFlight: number;
  /** From now on refuses new requests with 503; resolves once those in flight have been answered. */
  drain(): Promise<void>;
  /** Stops observing the rewriter (its batch sizes); the handler answers 503 from then on. */
  close(): void;
}

/** What a client did wrong (or what went wrong for it), with the HTTP status it maps to. */
class HttpError extends Error {
  readonly status: number;
  readonly code: MinielmErrorCode;
  readonly field: string | undefined;
  readonly headers: Record<string, string>;
  constructor(status: number, code: MinielmErrorCode, message: string, field?: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
    this.headers = headers;
  }
}

interface Route {
  method: 'GET' | 'POST';
  /** Bounded label for the metrics (never the raw URL: that would let clients grow the label set). */
  name: string;
}

const ROUTES: Record<string, Route> = {
  '/': { method: 'GET', name: 'playground' },
  '/healthz': { method: 'GET', name: 'healthz' },
  '/metrics': { method: 'GET', name: 'metrics' },
  '/v1/rewrite': { method: 'POST', name: 'rewrite' },
  '/v1/expand': { method: 'POST', name: 'expand' },
};

const HANDLER_OPTIONS = ['retriever', 'products', 'relevance', 'maxBodyBytes', 'maxQueries', 'maxN', 'maxK', 'maxQueryLength', 'timeoutMs', 'registry', 'playground'];
const REWRITE_FIELDS = ['query', 'queries', 'n', 'strategy', 'temperature', 'topP', 'seed', 'includeQuery'];
const EXPAND_FIELDS = ['query', 'n', 'strategy', 'temperature', 'topP', 'seed', 'k', 'merge', 'limit', 'select', 'send', 'freshWeight', 'source'];

function positiveInt(name: string, value: number | undefined, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > max) throw invalidArgument(`${name} must be a positive integer${max < Number.MAX_SAFE_INTEGER ? ` (at most ${max})` : ''}, got ${describeValue(value)}`);
  return value;
}

/** setTimeout's longest delay (about 24.8 days): a longer one fires at once, and with it every request's 408/504. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

function typeName(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
}

/** The same endpoints as `minielm serve`, as a handler for an existing server. */
export function createRewriteHandler(rewriter: Rewriter, options: RewriteHandlerOptions = {}): RewriteHandler {
  if (!rewriter || typeof rewriter.rewrite !== 'function' || typeof rewriter.stats !== 'function') throw invalidArgument('createRewriteHandler needs a Rewriter (Rewriter.load)');
  if (options === null || typeof options !== 'object') throw invalidArgument('createRewriteHandler options must be an object');
  for (const key of Object.keys(options)) {
    if (!HANDLER_OPTIONS.includes(key)) throw invalidArgument(`createRewriteHandler: unknown option "${key}"; the options are ${HANDLER_OPTIONS.join(', ')}`);
  }
  const retriever = options.retriever;
  // An object: a string has a search method too (String.prototype.search).
  if (retriever !== undefined && (retriever === null || typeof retriever !== 'object' || typeof retriever.search !== 'function'))
    throw invalidArgument(`retriever must be an object with search(queries, k) (Bm25Retriever, MeilisearchRetriever), got ${describeValue(retriever)}`);
  if (options.products !== undefined && typeof (options.products as Iterable<unknown>)?.[Symbol.iterator] !== 'function') throw invalidArgument('products must be an iterable of { id, title }');
  if (options.relevance !== undefined && typeof options.relevance?.scoreBatch !== 'function') throw invalidArgument(`relevance must be a RelevanceScorer (scoreBatch(pairs)), got ${describeValue(options.relevance)}`);
  if (options.registry !== undefined && !(options.registry instanceof Registry)) throw invalidArgument('registry must be a prom-client Registry');
  if (options.playground !== undefined && typeof options.playground !== 'boolean') throw invalidArgument(`playground must be true or false, got ${describeValue(options.playground)}`);
  const limits = {
    maxBodyBytes: positiveInt('maxBodyBytes', options.maxBodyBytes, 16 * 1024),
    maxQueries: positiveInt('maxQueries', options.maxQueries, 64),
    maxN: positiveInt('maxN', options.maxN, 32),
    maxK: positiveInt('maxK', options.maxK, 100),
    maxQueryLength: positiveInt('maxQueryLength', options.maxQueryLength, 512),
    timeoutMs: positiveInt('timeoutMs', options.timeoutMs, 10_000, MAX_TIMEOUT_MS),
  };
  const titles = new Map<string, string>();
  for (const p of options.products ?? []) if (p && typeof p.id === 'string' && typeof p.title === 'string') titles.set(p.id, p.title);
  // The catalog's word statistics for "source": "feedback" | "both" (pseudo-relevance feedback rewrites),
  // counted on the first request that asks: a server that never does pays nothing.
  let feedback: FeedbackExpander | undefined;
  const feedbackExpander = (): FeedbackExpander | undefined => {
    if (!feedback && titles.size > 0) feedback = new FeedbackExpander([...titles].map(([id, title]) => ({ id, title })));
    return feedback;
  };
  const page = options.playground === false ? null : playgroundHtml({ expand: retriever !== undefined, maxN: limits.maxN });

  const registry = options.registry ?? new Registry();
  if (!options.registry) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const requests = new Counter({ name: 'minielm_http_requests_total', help: 'HTTP requests answered, by route and status code', labelNames: ['route', 'status'] as const, registers });
  const latency = new Histogram({
    name: 'minielm_http_request_duration_seconds', help: 'Time from request to answer, by route', labelNames: ['route'] as const, registers,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  const batchSequences = new Histogram({ name: 'minielm_decode_batch_sequences', help: 'Sequences per native decode (requests x n)', registers, buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] });
  const batchRequests = new Histogram({ name: 'minielm_decode_batch_requests', help: 'Requests per native decode (micro-batch size)', registers, buckets: [1, 2, 4, 8, 16, 32, 64, 128] });
  // A counter that mirrors one of the rewriter's own running totals at every scrape.
  const mirrorCounter = (name: string, help: string, total: () => number): void => {
    let seen = 0;
    new Counter({
      name, help, registers,
      collect() {
        const now = total();
        this.inc(Math.max(0, now - seen));
        seen = now;
      },
    });
  };
  mirrorCounter('minielm_rewrite_cache_hits_total', 'Rewrite requests answered from the LRU cache', () => rewriter.stats().cacheHits);
  mirrorCounter('minielm_rewrite_cache_misses_total', 'Rewrite requests the LRU cache did not hold', () => rewriter.stats().cacheMisses);
  new Gauge({ name: 'minielm_rewrite_queue_depth', help: 'Rewrite requests waiting for the decoder', registers, collect() { this.set(rewriter.stats().queued); } });
  const inFlightGauge = new Gauge({ name: 'minielm_http_in_flight', help: 'HTTP requests being answered', registers });
  const stopObserving = rewriter.onBatch((b) => {
    batchSequences.observe(b.sequences);
    batchRequests.observe(b.requests);
  });

  let inFlight = 0;
  const open = new Set<ServerResponse>();
  let draining = false;
  let closed = false;
  const idle: (() => void)[] = [];

  const handler = ((req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void => {
    const started = performance.now();
    const path = (req.url ?? '/').split('?')[0];
    const route = Object.hasOwn(ROUTES, path) ? ROUTES[path] : undefined;
    if (!route && next) {
      next();
      return;
    }
    inFlight += 1;
    inFlightGauge.inc();
    open.add(res);
    // Once draining, every answer closes its connection so that keep-alive clients move elsewhere.
    if (draining) res.shouldKeepAlive = false;
    // A client that hangs up drops its request from the decoder queue.
    const controller = new AbortController();
    let timedOut = false;
    let bodyDone = false;
    let finished = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
      if (!bodyDone) {
        // A slow sender: answer, then drop the connection rather than wait for the rest of its body.
        sendError(res, new HttpError(408, 'MINIELM_TIMEOUT', `the request body did not arrive within ${limits.timeoutMs} ms`), true);
      }
    }, limits.timeoutMs);
    const done = (status = String(res.statusCode)): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      open.delete(res);
      inFlight -= 1;
      inFlightGauge.dec();
      const label = route?.name ?? 'unknown';
      requests.inc({ route: label, status });
      latency.observe({ route: label }, (performance.now() - started) / 1000);
      if (inFlight === 0) for (const resolve of idle.splice(0)) resolve();
    };
    res.once('finish', () => done());
    res.once('close', () => {
      if (res.writableFinished) return done();
      controller.abort();
      // nginx's "client closed request": the client left before the answer.
      done('499');
    });
    // Socket errors (a client resetting mid-body) must not become uncaught 'error' events.
    req.on('error', () => controller.abort());
    res.on('error', () => controller.abort());

    void (async () => {
      if (!route) throw new HttpError(404, 'MINIELM_NOT_FOUND', `no endpoint at ${path}: use GET /, /healthz, /metrics or POST /v1/rewrite, /v1/expand`);
      if (req.method !== route.method && !(route.method === 'GET' && req.method === 'HEAD'))
        throw new HttpError(405, 'MINIELM_INVALID_ARGUMENT', `${path} takes ${route.method}, not ${req.method}`, undefined, { allow: route.method === 'GET' ? 'GET, HEAD' : 'POST' });
      if (draining || closed || rewriter.closed) {
        if (route.name === 'healthz') return sendJson(res, 503, { status: 'draining' });
        throw new HttpError(503, 'MINIELM_OVERLOADED', 'the server is shutting down: send the request to another instance', undefined, { 'retry-after': '1' });
      }
      switch (route.name) {
        case 'playground':
          if (!page) throw new HttpError(404, 'MINIELM_NOT_FOUND', 'the playground page is turned off on this server');
          return send(res, 200, 'text/html; charset=utf-8', page);
        case 'healthz': {
          const s = rewriter.stats();
          return sendJson(res, 200, { status: 'ok', queued: s.queued, running: s.running, expand: retriever !== undefined });
        }
        case 'metrics':
          return send(res, 200, registry.contentType, await registry.metrics());
      }
      const body = await readJson(req, limits.maxBodyBytes);
      bodyDone = true;
      if (route.name === 'rewrite') return sendJson(res, 200, await rewriteRoute(body));
      return sendJson(res, 200, await expandRoute(body));
    })().catch((err: unknown) => {
      bodyDone = true;
      if (res.headersSent || res.destroyed) return;
      if (timedOut) {
        sendError(res, new HttpError(504, 'MINIELM_TIMEOUT', `the rewrite did not finish within ${limits.timeoutMs} ms: retry, ask for fewer rewrites (n) or fewer queries`));
        return;
      }
      const e = toHttpError(err);
      // A body left unread (too large, or cut off) would be parsed as the next request: close instead.
      sendError(res, e, e.status === 413 || e.status === 408 || !req.complete);
    });

    async function rewriteRoute(body: Record<string, unknown>): Promise<unknown> {
      checkFields(body, REWRITE_FIELDS);
      const { query, queries, ...opts } = body;
      if ((query === undefined) === (queries === undefined)) throw new HttpError(400, 'MINIELM_INVALID_ARGUMENT', 'send either "query" (a string) or "queries" (an array of strings)', query === undefined ? 'query' : 'queries');
      checkN(opts.n);
      const options = { ...opts, signal: controller.signal };
      if (query !== undefined) {
        checkQuery(query, 'query');
        return { query, rewrites: await rewriter.rewrite(query as string, options) };
      }
      if (!Array.isArray(queries)) throw new HttpError(400, 'MINIELM_INVALID_ARGUMENT', `"queries" must be an array of strings, got ${typeName(queries)}`, 'queries');
      if (queries.length === 0 || queries.length > limits.maxQueries)
        throw new HttpError(400, 'MINIELM_INVALID_ARGUMENT', `"queries" must hold 1 to ${limits.maxQueries} queries, got ${queries.length}: split the request`, 'queries');
      queries.forEach((q, i) => checkQuery(q, `queries[${i}]`));
      const lists = await rewriter.rewriteBatch(queries as string[], options);
      return { results: lists.map((rewrites, i) => ({ query: queries[i] as string, rewrites })) };
    }

    async function expandRoute(body: Record<string, unknown>): Promise<unknown> {
      if (!retriever) throw new HttpError(404, 'MINIELM_NOT_FOUND', 'POST /v1/expand needs a retriever: start minielm serve with --catalog FILE or --meilisearch-url URL (or pass retriever to createRewriteHandler)');
      checkFields(body, EXPAND_FIELDS);
      const { query, ...opts } = body;
      if (query === undefined) throw new HttpError(400, 'MINIELM_INVALID_ARGUMENT', 'send "query": the search query to expand', 'query');
      checkQuery(query, 'query');
      checkN(opts.n);
      for (const f of ['k', 'limit'] as const) {
        const v = opts[f];
        if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > limits.maxK))
          throw new HttpError(400, 'MINIELM_INVALID_ARGUMENT', `"${f}" must be an integer in [1, ${limits.maxK}], got ${describeValue(v)}`, f);
      }
      // 'bandit' needs click feedback, which has no endpoint here: all, top (the best `send`), fresh or relevance.
      if (opts.select !== undefined && opts.select !== 'all' && opts.select !== 'top' && opts.select !== 'fresh' && opts.select !== 'relevance')
        throw new HttpError(400, 'MINIELM_INVALID_ARGUMENT', `"select" must be "all", "top", "fresh" or "relevance", got ${describeValue(opts.select)}`, 'select');
      if (opts.select === 'relevance') {
        if (!options.relevance || titles.size === 0)
          throw new HttpError(400, 'MINIELM_INVALID_ARGUMENT', '"select": "relevance" needs a relevance scorer and the catalog\'s titles: start minielm serve with --relevance-model DIR and --catalog FILE (or pass relevance and products to createRewriteHandler)', 'select');
        opts.relevance = { scorer: options.relevance, titleOf: (id: string) => titles.get(id) };
        if (opts.n === undefined) opts.n = Math.min(DEFAULT_RELEVANCE_CANDIDATES, limits.maxN);
      }
      if (opts.send !== undefined && (typeof opts.send !== 'number' || !Number.isInteger(opts.send) || opts.send < 1 || opts.send > limits.maxN))
        throw new HttpError(400, 'MINIELM_INVALID_ARGUMENT', `"send" must be an integer in [1, ${limits.maxN}], got ${describeValue(opts.send)}`, 'send');
      if (opts.source !== undefined && opts.source !== 'model' && opts.source !== 'feedback' && opts.source !== 'both')
        throw new HttpError(400, 'MINIELM_INVALID_ARGUMENT', `"source" must be "model", "feedback" or "both", got ${describeValue(opts.source)}`, 'source');
      if (opts.source !== undefined && opts.source !== 'model') {
        const expander = feedbackExpander();
        if (!expander) throw new HttpError(400, 'MINIELM_INVALID_ARGUMENT', `"source": "${String(opts.source)}" needs the catalog's titles: start minielm serve with --catalog FILE (or pass products to createRewriteHandler)`, 'source');
        opts.feedback = expander;
      }
      // 'fresh' decodes 30 candidates unless told: never more than a request may ask for.
      if (opts.select === 'fresh' && opts.n === undefined) opts.n = Math.min(DEFAULT_FRESH_CANDIDATES, limits.maxN);
      const out = await rewriter.expand(query as string, retriever, { ...opts, signal: controller.signal });
      return { ...out, products: out.products.map((p) => (titles.has(p.id) ? { id: p.id, title: titles.get(p.id), score: p.score, from: p.from } : p)) };
    }
  }) as RewriteHandler;

  function checkFields(body: Record<string, unknown>, allowed: readonly string[]): void {
    for (const key of Object.keys(body)) {
      if (!allowed.includes(key)) throw new HttpError(400, 'MINIELM_INVALID_ARGUMENT', `unknown field "${key.slice(0, 64)}": the fields are ${allowed.join(', ')}`, key.slice(0, 64));
    }
  }

  function checkN(n: unknown): void {
    if (n !== undefined && (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > limits.maxN))
      throw new HttpError(400, 'MINIELM_INVALID_ARGUMENT', `"n" must be an integer in [1, ${limits.maxN}], got ${describeValue(n)}`, 'n');
  }

  function checkQuery(q: unknown, field: string): void {
    if (typeof q !== 'string') throw new HttpError(400, 'MINIELM_INVALID_ARGUMENT', `"${field}" must be a string, got ${typeName(q)}`, field);
    if (q.trim().length === 0) throw new HttpError(400, 'MINIELM_INVALID_ARGUMENT', `"${field}" is empty: send the search query to rewrite`, field);
    if (q.length > limits.maxQueryLength) throw new HttpError(400, 'MINIELM_INVALID_ARGUMENT', `"${field}" has ${q.length} characters; at most ${limits.maxQueryLength} are accepted`, field);
  }

  Object.defineProperties(handler, {
    registry: { value: registry },
    inFlight: { get: () => inFlight },
    drain: {
      value: (): Promise<void> => {
        draining = true;
        for (const res of open) res.shouldKeepAlive = false;
        return inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => idle.push(resolve));
      },
    },
    close: {
      value: (): void => {
        closed = true;
        stopObserving();
      },
    },
  });
  return handler;
}

/** Reads and parses the JSON body: 413 past the limit, 400 for invalid UTF-8, invalid JSON or a non-object. */
async function readJson(req: IncomingMessage, maxBytes: number): Promise<Record<string, unknown>> {
  // Express (express.json()) and Fastify (request.body) may have read the body already.
  const preParsed = (req as IncomingMessage & { body?: unknown }).body;
  let value: unknown;
  if (preParsed !== undefined && !(preParsed instanceof Uint8Array) && typeof preParsed !== 'string') value = preParsed;
  else {
    const bytes = preParsed instanceof Uint8Array ? preParsed : typeof preParsed === 'string' ? Buffer.from(preParsed) : await readBody(req, maxBytes);
    if (bytes.length > maxBytes) throw new HttpError(413, 'MINIELM_INVALID_ARGUMENT', `the request body has ${bytes.length} bytes; at most ${maxBytes} are accepted`);
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw new HttpError(400, 'MINIELM_INVALID_ARGUMENT', 'the request body is not valid UTF-8: send JSON encoded as UTF-8');
    }
    if (text.trim().length === 0) throw new HttpError(400, 'MINIELM_INVALID_ARGUMENT', 'the request body is empty: send a JSON object such as {"query": "cordless drill"}');
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new HttpError(400, 'MINIELM_INVALID_ARGUMENT', `the request body is not valid JSON (${(err as Error).message.slice(0, 120)})`);
    }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new HttpError(400, 'MINIELM_INVALID_ARGUMENT', `the request body must be a JSON object such as {"query": "cordless drill"}, got ${typeName(value)}`);
  return value as Record<string, unknown>;
}

function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) return Promise.reject(new HttpError(413, 'MINIELM_INVALID_ARGUMENT', `the request body has ${declared} bytes; at most ${maxBytes} are accepted`));
  if (req.readableEnded) return Promise.reject(new HttpError(400, 'MINIELM_INVALID_ARGUMENT', 'the request body was already read by another middleware: mount the rewrite handler before body parsers, or leave the parsed body in req.body'));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        cleanup();
        reject(new HttpError(413, 'MINIELM_INVALID_ARGUMENT', `the request body exceeds ${maxBytes} bytes: send fewer or shorter queries`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onAbort = (): void => {
      cleanup();
      reject(new HttpError(400, 'MINIELM_INVALID_ARGUMENT', 'the request body was cut off before its end'));
    };
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('aborted', onAbort);
      req.off('error', onAbort);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('aborted', onAbort);
    req.on('error', onAbort);
  });
}

function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof MinielmError) {
    const field = err instanceof InvalidOptionError ? err.option : undefined;
    switch (err.code) {
      case 'MINIELM_INVALID_ARGUMENT':
        return new HttpError(400, err.code, err.message, field);
      case 'MINIELM_OVERLOADED':
        return new HttpError(503, err.code, err.message, undefined, { 'retry-after': '1' });
      case 'MINIELM_ABORTED':
        return new HttpError(503, err.code, err.message);
      case 'MINIELM_TIMEOUT':
        return new HttpError(504, err.code, err.message);
      case 'MINIELM_UNREACHABLE':
        return new HttpError(502, err.code, err.message);
      default:
        return new HttpError(500, err.code, err.message);
    }
  }
  return new HttpError(500, 'MINIELM_NATIVE', `internal error: ${err instanceof Error ? err.message : String(err)}`);
}

function send(res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}, close = false): void {
  if (res.headersSent || res.destroyed) return;
  const bytes = Buffer.from(body);
  res.writeHead(status, { 'content-type': type, 'content-length': String(bytes.length), 'cache-control': 'no-store', ...headers, ...(close ? { connection: 'close' } : {}) });
  res.end(res.req?.method === 'HEAD' ? undefined : bytes);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value));
}

function sendError(res: ServerResponse, e: HttpError, close = false): void {
  const error: Record<string, string> = { code: e.code, message: e.message };
  if (e.field !== undefined) error.field = e.field;
  send(res, e.status, 'application/json; charset=utf-8', JSON.stringify({ error }), e.headers, close);
  // The connection is going away: stop reading whatever the client still sends.
  if (close) res.once('finish', () => res.req?.socket?.destroySoon());
}

export interface RewriteServerOptions extends RewriteHandlerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** On shutdown, how long in-flight requests may take before their connections are closed, in ms. Default 10,000. */
  graceMs?: number;
}

export interface RewriteServer {
  server: Server;
  handler: RewriteHandler;
  /** http://host:port/ */
  url: string;
  /** Graceful stop: refuses new requests, lets those in flight finish, closes every connection. */
  shutdown(): Promise<void>;
}

/** A node:http server running createRewriteHandler; `minielm serve` is this plus signal handling. */
export async function startRewriteServer(rewriter: Rewriter, options: RewriteServerOptions = {}): Promise<RewriteServer> {
  if (options === null || typeof options !== 'object') throw invalidArgument(`startRewriteServer options must be an object, got ${describeValue(options)}`);
  const { host = '127.0.0.1', port = 8080, graceMs = 10_000, ...handlerOptions } = options;
  if (typeof host !== 'string' || host.length === 0) throw invalidArgument(`host must be a host name or address such as 127.0.0.1, got ${describeValue(host)}`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalidArgument(`port must be an integer in [0, 65535], got ${describeValue(port)}`);
  if (typeof graceMs !== 'number' || !Number.isFinite(graceMs) || graceMs < 0 || graceMs > MAX_TIMEOUT_MS)
    throw invalidArgument(`graceMs must be a number of milliseconds in [0, ${MAX_TIMEOUT_MS}], got ${describeValue(graceMs)}`);
  const handler = createRewriteHandler(rewriter, handlerOptions);
  const timeoutMs = handlerOptions.timeoutMs ?? 10_000;
  // Node's own timers stop clients that never finish their headers (slowloris); the handler's timer the body.
  const server = createServer({ requestTimeout: timeoutMs + 5_000, headersTimeout: Math.min(timeoutMs + 5_000, 10_000), connectionsCheckingInterval: 1_000 }, handler);
  // node:http hands CONNECT to a 'connect' listener and drops the socket when there is none: answer 405.
  server.on('connect', (_req, socket: Socket) => {
    socket.on('error', () => undefined);
    socket.end('HTTP/1.1 405 Method Not Allowed\r\nallow: GET, HEAD, POST\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  });
  // A malformed request line or header gets Node's 400 and a closed socket, never an 'error' event.
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(new MinielmError('MINIELM_INVALID_ARGUMENT', `cannot listen on ${host}:${port} (${err.code ?? err.message}): pick another --port or --host`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let stopping: Promise<void> | null = null;
  return {
    server,
    handler,
    url: `http://${shown}:${address.port}/`,
    shutdown() {
      stopping ??= (async () => {
        const closedServer = new Promise<void>((resolve) => server.close(() => resolve()));
        const drained = handler.drain();
        server.closeIdleConnections();
        let graceTimer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([drained, new Promise<void>((resolve) => (graceTimer = setTimeout(resolve, graceMs)))]);
        clearTimeout(graceTimer);
        server.closeAllConnections();
        await closedServer;
        handler.close();
      })();
      return stopping;
    },
  };
}
