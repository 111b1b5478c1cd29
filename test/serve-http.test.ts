// The rewriter over HTTP, on servers bound to port 0: every endpoint and status code (200, 400 naming the
// field, 404, 405, 408, 413, 503, 504), Prometheus metrics, the playground page, graceful shutdown (in
// flight finishes, new refused), the handler inside another server, 10,000 malformed
// requests with valid ones answered throughout, and `minielm serve` itself stopped by SIGTERM.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect } from 'node:net';
import { Registry } from 'prom-client';
import { Rewriter } from '../lib/serve/rewriter.ts';
import { createRewriteHandler, startRewriteServer, type RewriteServer } from '../lib/serve/http.ts';
import { Bm25Retriever } from '../lib/retrieval/index.ts';
import type { Product } from '../lib/retrieval/index.ts';
import { trainedRewriter, type TrainedRewriter } from './helpers/rewriter-model.ts';

let root = '';
let trained: TrainedRewriter;
let products: Product[] = [];
let bm25: Bm25Retriever;
let main: RewriteServer;
let rewriter: Rewriter;
const cleanup: (() => Promise<void>)[] = [];

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: { error?: { code: string; message: string; field?: string } } & Record<string, unknown>;
}

function call(base: string, o: { method?: string; path?: string; body?: string | Buffer | Buffer[]; headers?: Record<string, string>; agent?: Agent } = {}): Promise<Answer> {
  const url = new URL(o.path ?? 'v1/rewrite', base);
  const method = o.method ?? (o.body === undefined ? 'GET' : 'POST');
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers: { 'content-type': 'application/json', ...o.headers }, agent: o.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = {} as Answer['json'];
        try {
          json = JSON.parse(text) as Answer['json'];
        } catch {
          // not JSON (the playground page, the metrics)
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    if (Array.isArray(o.body)) {
      // Chunked, no content-length: the limit must hold while streaming too.
      for (const chunk of o.body) req.write(chunk);
      req.end();
    } else req.end(o.body);
  });
}

const post = (base: string, body: unknown, path = 'v1/rewrite'): Promise<Answer> => call(base, { path, body: typeof body === 'string' ? body : JSON.stringify(body) });

/** Raw bytes on a socket; resolves with everything the server sent before closing it. */
function raw(base: string, bytes: string, o: { keepOpen?: boolean } = {}): Promise<string> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    let got = '';
    socket.on('data', (d) => (got += d.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => resolve(got));
    socket.write(bytes);
    if (!o.keepOpen) socket.end();
  });
}

async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition() && Date.now() < end) await new Promise((r) => setTimeout(r, 2));
  assert.ok(condition(), `timed out waiting for ${what}`);
}

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'minielm-http-'));
  trained = await trainedRewriter(root);
  products = [...trained.fixture.catalog.products.values()].map((p) => ({ id: p.id, title: p.title }));
  bm25 = new Bm25Retriever();
  await bm25.index(products);
  rewriter = await Rewriter.load(trained.dir);
  main = await startRewriteServer(rewriter, { port: 0, retriever: bm25, products, maxBodyBytes: 2048, maxQueries: 4, maxN: 8, timeoutMs: 1000 });
});
test.after(async () => {
  for (const c of cleanup) await c();
  await main.shutdown();
  await rewriter.close();
  await rm(root, { recursive: true, force: true });
});

test('POST /v1/rewrite answers one query or several, as the Rewriter does', async () => {
  const [q1, q2] = trained.queries;
  const one = await post(main.url, { query: q1, n: 5 });
  assert.is(one.status, 200, one.text);
  assert.match(String(one.headers['content-type']), /application\/json/);
  assert.equal(one.json, { query: q1, rewrites: await rewriter.rewrite(q1, { n: 5 }) });
  const many = await post(main.url, { queries: [q1, q2], n: 3, strategy: 'sample', seed: 5, temperature: 0.8 });
  assert.is(many.status, 200, many.text);
  const expected = await rewriter.rewriteBatch([q1, q2], { n: 3, strategy: 'sample', seed: 5, temperature: 0.8 });
  assert.equal(many.json, { results: [{ query: q1, rewrites: expected[0] }, { query: q2, rewrites: expected[1] }] });
});

test('POST /v1/expand returns the merged products with titles and the rewrite that brought each', async () => {
  const q = trained.queries[0];
  const r = await post(main.url, { query: q, n: 4, k: 5 }, 'v1/expand');
  assert.is(r.status, 200, r.text);
  const body = r.json as unknown as { query: string; rewrites: { text: string }[]; products: { id: string; title: string; from: { text: string; query: boolean; rank: number }[] }[] };
  assert.is(body.query, q);
  assert.ok(body.products.length > 0);
  const titles = new Map(products.map((p) => [p.id, p.title]));
  for (const p of body.products) {
    assert.is(p.title, titles.get(p.id));
    assert.ok(p.from.length > 0 && p.from.every((s) => s.text === q || body.rewrites.some((x) => x.text === s.text)));
  }
  const interleaved = await post(main.url, { query: q, n: 4, k: 5, merge: 'interleave', limit: 3 }, 'v1/expand');
  assert.is((interleaved.json.products as unknown[]).length, 3);
  // Result-aware selection over HTTP: 2 of 8 candidates sent, the selection reported.
  const fresh = await post(main.url, { query: q, n: 8, k: 5, select: 'fresh', send: 2 }, 'v1/expand');
  assert.is(fresh.status, 200, fresh.text);
  const f = fresh.json as unknown as { rewrites: unknown[]; selection: { strategy: string; candidates: unknown[] } };
  assert.is(f.selection.strategy, 'fresh');
  assert.ok(f.rewrites.length <= 2 && f.selection.candidates.length >= f.rewrites.length);
  // Pseudo-relevance feedback rewrites from the served catalog's titles.
  const fb = await post(main.url, { query: q, n: 3, k: 5, source: 'feedback' }, 'v1/expand');
  assert.is(fb.status, 200, fb.text);
  const fr = fb.json as unknown as { rewrites: { text: string; source?: string }[] };
  assert.ok(fr.rewrites.length > 0 && fr.rewrites.every((x) => x.source === 'feedback' && x.text.startsWith(`${q} `)), fb.text);
});

test('POST /v1/expand "select": "relevance" rates new products with the handler\'s scorer, against the query', async () => {
  const q = trained.queries[0];
  const refused = await post(main.url, { query: q, select: 'relevance' }, 'v1/expand');
  assert.is(refused.status, 400);
  assert.match(refused.text, /needs a relevance scorer.*--relevance-model/);
  const asked: string[] = [];
  // Rates a product by the share of the query's words in its title.
  const relevance = {
    async scoreBatch(pairs: { query: string; product: { title: string } }[]) {
      return pairs.map((p) => {
        asked.push(p.query);
        const words = p.query.toLowerCase().split(/\s+/);
        return words.filter((w) => p.product.title.toLowerCase().includes(w)).length / words.length;
      });
    },
  };
  assert.throws(() => createRewriteHandler(rewriter, { relevance: {} as never }), /relevance must be a RelevanceScorer/);
  const server = await startRewriteServer(rewriter, { port: 0, retriever: bm25, products, relevance, maxN: 8 });
  try {
    // The first fixture query whose candidates bring products its own top 2 lacks.
    let checked = 0;
    for (const query of trained.queries) {
      asked.length = 0;
      const r = await post(server.url, { query, k: 2, select: 'relevance', send: 2 }, 'v1/expand');
      assert.is(r.status, 200, r.text);
      const body = r.json as unknown as { rewrites: unknown[]; selection: { strategy: string; candidates: { text: string }[] } };
      assert.is(body.selection.strategy, 'relevance');
      assert.ok(body.selection.candidates.length <= 8, 'n defaults to 60 candidates, capped by maxN');
      assert.ok(body.rewrites.length <= 2);
      // Exactly the candidates' products the query's own top 2 lacks were rated, each against the query.
      const [own, ...lists] = await bm25.search([query, ...body.selection.candidates.map((c) => c.text)], 2);
      const fresh = new Set(lists.flat().filter((id) => !own.includes(id)));
      assert.is(asked.length, fresh.size);
      assert.ok(asked.every((x) => x === query), `products are rated against the query: ${JSON.stringify([...new Set(asked)])}`);
      if (fresh.size > 0 && ++checked >= 2) break;
    }
    assert.ok(checked > 0, 'some fixture query has candidates that bring new products');
    const unknown = await post(server.url, { query: q, select: 'relevance', relevance: {} }, 'v1/expand');
    assert.is(unknown.status, 400, 'a client cannot pass its own scorer');
  } finally {
    await server.shutdown();
  }
});

test('GET /healthz, GET /metrics (Prometheus text with every metric) and the playground page', async () => {
  const health = await call(main.url, { path: 'healthz' });
  assert.is(health.status, 200);
  assert.is(health.json.status, 'ok');
  assert.is(health.json.expand, true);
  const q = trained.queries[3];
  await post(main.url, { query: q, n: 2 });
  await post(main.url, { query: q, n: 2 });
  const metrics = await call(main.url, { path: 'metrics' });
  assert.is(metrics.status, 200);
  assert.match(String(metrics.headers['content-type']), /text\/plain/);
  for (const name of ['minielm_http_requests_total', 'minielm_http_request_duration_seconds_bucket', 'minielm_decode_batch_sequences_bucket', 'minielm_decode_batch_requests_bucket',
    'minielm_rewrite_cache_hits_total', 'minielm_rewrite_cache_misses_total', 'minielm_rewrite_queue_depth', 'minielm_http_in_flight', 'process_resident_memory_bytes']) {
    assert.ok(metrics.text.includes(name), `/metrics has ${name}`);
  }
  assert.match(metrics.text, /minielm_http_requests_total\{route="rewrite",status="200"\} \d+/);
  const hits = Number(/minielm_rewrite_cache_hits_total (\d+)/.exec(metrics.text)?.[1]);
  assert.ok(hits >= 1, `cache hits ${hits} after a repeated request`);
  const page = await call(main.url, { path: '/' });
  assert.is(page.status, 200);
  assert.match(String(page.headers['content-type']), /text\/html/);
  assert.match(page.text, /<form id="form">/);
  assert.match(page.text, /v1\/expand/);
  assert.not.match(page.text, /<script[^>]+src=|<link[^>]+href=|https?:\/\//, 'self-contained: nothing loaded from elsewhere');
  const head = await call(main.url, { method: 'HEAD', path: 'healthz' });
  assert.is(head.status, 200);
  assert.is(head.text, '');
});

test('4xx answers name the field and the fix: 400, 404, 405, 413, invalid UTF-8', async () => {
  const cases: [unknown, number, string | undefined, RegExp][] = [
    ['{"query":', 400, undefined, /not valid JSON/],
    ['[1]', 400, undefined, /JSON object/],
    ['', 400, undefined, /empty/],
    [{ query: 5 }, 400, 'query', /must be a string/],
    [{ query: '  ' }, 400, 'query', /empty/],
    [{ query: 'a'.repeat(513) }, 400, 'query', /at most 512/],
    [{ queries: 'drill' }, 400, 'queries', /array/],
    [{ queries: ['a', 'b', 'c', 'd', 'e'] }, 400, 'queries', /1 to 4/],
    [{ queries: ['a', 3] }, 400, 'queries[1]', /string/],
    [{ query: 'a', queries: ['b'] }, 400, 'queries', /either/],
    [{ n: 3 }, 400, 'query', /either/],
    [{ query: 'a', n: 9 }, 400, 'n', /\[1, 8\]/],
    [{ query: 'a', n: 'ten' }, 400, 'n', /integer/],
    [{ query: 'a', strategy: 'greedy' }, 400, 'strategy', /'beam' or 'sample'/],
    [{ query: 'a', temperature: 2 }, 400, 'temperature', /strategy 'sample' only/],
    [{ query: 'a', strategy: 'sample', topP: 2 }, 400, 'topP', /\(0, 1\]/],
    [{ query: 'a', seed: 1.5, strategy: 'sample' }, 400, 'seed', /non-negative integer/],
    [{ query: 'a', includeQuery: 1 }, 400, 'includeQuery', /true or false/],
    [{ query: 'a', signal: 1 }, 400, 'signal', /unknown field/],
    [{ query: 'a', beams: 1 }, 400, 'beams', /unknown field "beams"/],
  ];
  for (const [body, status, field, message] of cases) {
    const r = await post(main.url, body);
    assert.is(r.status, status, `${JSON.stringify(body)} -> ${r.text}`);
    assert.is(r.json.error?.code, 'MINIELM_INVALID_ARGUMENT');
    assert.is(r.json.error?.field, field, `${JSON.stringify(body)}: field`);
    assert.match(r.json.error!.message, message);
  }
  const expandCases: [unknown, string][] = [[{ query: 'a', select: 'bandit' }, 'select'], [{ query: 'a', select: 'top', send: 0 }, 'send'], [{ query: 'a', select: 'fresh', freshWeight: -1 }, 'freshWeight'], [{ query: 'a', k: 101 }, 'k'], [{ query: 'a', limit: 0 }, 'limit'], [{ query: 'a', merge: 'sum' }, 'merge'], [{ query: 'a', source: 'rules' }, 'source'], [{ query: 'a', feedback: {} }, 'feedback'], [{ queries: ['a'] }, 'queries'], [{}, 'query']];
  for (const [body, field] of expandCases) {
    const r = await post(main.url, body, 'v1/expand');
    assert.is(r.status, 400, r.text);
    assert.is(r.json.error?.field, field, r.text);
  }
  const utf8 = await call(main.url, { body: Buffer.from([0x7b, 0x22, 0x71, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]) });
  assert.is(utf8.status, 400);
  assert.match(utf8.json.error!.message, /not valid UTF-8/);
  const big = await post(main.url, { query: 'x'.repeat(3000) });
  assert.is(big.status, 413);
  assert.match(big.json.error!.message, /at most 2048/);
  const chunked = await call(main.url, { body: [Buffer.from('{"query":"'), Buffer.alloc(1500, 0x61), Buffer.alloc(1500, 0x61), Buffer.from('"}')] });
  assert.is(chunked.status, 413, 'a chunked body is cut off at the limit too');
  const missing = await call(main.url, { path: 'v2/rewrite' });
  assert.is(missing.status, 404);
  assert.is(missing.json.error?.code, 'MINIELM_NOT_FOUND');
  const wrong = await call(main.url, { path: 'v1/rewrite', method: 'GET' });
  assert.is(wrong.status, 405);
  assert.is(wrong.headers.allow, 'POST');
  const badLine = await raw(main.url, 'BREW /coffee HTCPCP/1.0\r\n\r\n');
  assert.match(badLine, /^HTTP\/1\.1 400/);
});

test('a slow sender gets 408; an overloaded rewriter 503 with Retry-After; a request past its timeout 504', async () => {
  const slow = await raw(main.url, 'POST /v1/rewrite HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n{"query"', { keepOpen: true });
  assert.match(slow, /^HTTP\/1\.1 408/);
  assert.match(slow, /did not arrive within 1000 ms/);
  // A decoder that never starts on its own (long wait window) and holds one request at most.
  const stuck = await Rewriter.load(trained.dir, { maxWaitMs: 10_000, queueLimit: 1, cacheSize: 0 });
  const s = await startRewriteServer(stuck, { port: 0, timeoutMs: 300 });
  cleanup.push(async () => {
    await s.shutdown();
    await stuck.close();
  });
  const first = post(s.url, { query: 'drill' });
  await until(() => stuck.stats().queued === 1, 'the first request to queue');
  const refused = await post(s.url, { query: 'saw' });
  assert.is(refused.status, 503, refused.text);
  assert.is(refused.json.error?.code, 'MINIELM_OVERLOADED');
  assert.is(refused.headers['retry-after'], '1');
  const late = await first;
  assert.is(late.status, 504, late.text);
  assert.is(late.json.error?.code, 'MINIELM_TIMEOUT');
  assert.is(stuck.stats().queued, 0, 'the timed-out request left the queue');
  assert.is(stuck.stats().aborted, 1);
  // A client that hangs up while its request waits takes the request out of the decoder queue.
  const gone = httpRequest(new URL('v1/rewrite', s.url), { method: 'POST', agent: false });
  gone.on('error', () => undefined);
  gone.end(JSON.stringify({ query: 'hammer' }));
  await until(() => stuck.stats().queued === 1, 'the hung-up request to queue');
  gone.destroy();
  await until(() => stuck.stats().queued === 0, 'the hung-up request to leave the queue');
  assert.is(stuck.stats().aborted, 2);
  assert.match(await s.handler.registry.metrics(), /minielm_http_requests_total\{route="rewrite",status="499"\} 1/);
  const noExpand = await post(s.url, { query: 'drill' }, 'v1/expand');
  assert.is(noExpand.status, 404);
  assert.match(noExpand.json.error!.message, /--catalog/);
});

test('graceful shutdown: the request in flight is answered, new ones are refused', async () => {
  const r = await Rewriter.load(trained.dir, { maxWaitMs: 300, cacheSize: 0 });
  const s = await startRewriteServer(r, { port: 0 });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  assert.is((await call(s.url, { path: 'healthz', agent })).status, 200, 'an idle keep-alive connection');
  const keepAlive = new Agent({ keepAlive: true });
  const inFlight = call(s.url, { body: JSON.stringify({ query: trained.queries[0], n: 3 }), agent: keepAlive });
  await until(() => r.stats().queued === 1, 'the request to reach the decoder queue');
  const stopping = s.shutdown();
  const refused = await call(s.url, { path: 'healthz' }).then((a) => a.status, (err: NodeJS.ErrnoException) => err.code);
  assert.is(refused, 'ECONNREFUSED', 'no new connections once shutting down');
  const answered = await inFlight;
  assert.is(answered.status, 200, answered.text);
  assert.is(answered.headers.connection, 'close');
  await stopping;
  assert.is(s.handler.inFlight, 0);
  assert.ok(!s.server.listening);
  agent.destroy();
  keepAlive.destroy();
  await r.close();
});

test('createRewriteHandler inside another server: a mount path, next() for other paths, a pre-parsed body, drain', async () => {
  assert.throws(() => createRewriteHandler(rewriter, { maxn: 3 } as never), /unknown option "maxn"/);
  assert.throws(() => createRewriteHandler(rewriter, { timeoutMs: 0 }), /timeoutMs must be a positive integer/);
  const registry = new Registry();
  const handler = createRewriteHandler(rewriter, { retriever: bm25, registry });
  const server: Server = createServer((req, res) => {
    if (req.url?.startsWith('/search/')) {
      req.url = req.url.slice('/search'.length);
      // What express.json() leaves behind.
      if (req.headers['x-parsed']) Object.assign(req, { body: JSON.parse(String(req.headers['x-parsed'])) });
      handler(req, res, () => {
        res.statusCode = 418;
        res.end('the app');
      });
      return;
    }
    res.end('the app');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}/search/`;
  try {
    const q = trained.queries[1];
    const r = await post(base, { query: q, n: 2 });
    assert.is(r.status, 200, r.text);
    assert.equal(r.json.rewrites, await rewriter.rewrite(q, { n: 2 }));
    const parsed = await call(base, { method: 'POST', path: 'v1/expand', headers: { 'x-parsed': JSON.stringify({ query: q, n: 2 }) } });
    assert.is(parsed.status, 200, parsed.text);
    assert.ok(Array.isArray(parsed.json.products));
    assert.is((await call(base, { path: 'elsewhere' })).status, 418, 'unknown paths go to next()');
    assert.match(await registry.metrics(), /minielm_http_requests_total\{route="rewrite",status="200"\} 1/);
    await handler.drain();
    const draining = await post(base, { query: q });
    assert.is(draining.status, 503);
    assert.match(draining.json.error!.message, /shutting down/);
    assert.is((await call(base, { path: 'healthz' })).status, 503);
  } finally {
    handler.close();
    await new Promise((resolve) => server.close(resolve));
  }
});

test('10,000 malformed requests each get their 4xx, and valid requests keep being answered throughout', async () => {
  const malformed: { body?: string | Buffer; method?: string; path?: string; status: number }[] = [
    { body: '{"query":', status: 400 },
    { body: '[1,2]', status: 400 },
    { body: '{"query": 5}', status: 400 },
    { body: '{"query":"x","n":100000}', status: 400 },
    { body: '{"queries":["a","b","c","d","e"]}', status: 400 },
    { body: Buffer.from([0x7b, 0x22, 0x71, 0x75, 0xc3, 0x28, 0x22, 0x7d]), status: 400 },
    { body: '{"query":"x","bogus":1}', status: 400 },
    { body: `{"query":"${'x'.repeat(4000)}"}`, status: 413 },
    { body: '', status: 400 },
    { body: '{"query":"x","strategy":"sample","temperature":"hot"}', status: 400 },
    { body: '['.repeat(1500), status: 400 },
    { body: '{"query":"x","k":1000}', path: 'v1/expand', status: 400 },
    { body: 'null', status: 400 },
    { body: '{"__proto__":{"n":1},"query":"x"}', status: 400 },
    { method: 'GET', path: 'v1/rewrite', status: 405 },
    { method: 'DELETE', path: 'metrics', status: 405 },
    { path: 'v1/rewrite/../../etc/passwd', status: 404 },
  ];
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  const slowSenders = Array.from({ length: 4 }, () => raw(main.url, 'POST /v1/rewrite HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{"qu', { keepOpen: true }));
  const wrong: string[] = [];
  let valid = 0;
  // Every 25th request is valid: 417 valid and 10,000 malformed.
  const total = 10_417;
  let malformedSent = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      if (i % 25 === 0) {
        const r = await post(main.url, { query: trained.queries[i % trained.queries.length], n: 3 });
        if (r.status === 200 && Array.isArray(r.json.rewrites)) valid += 1;
        else wrong.push(`valid request ${i}: ${r.status} ${r.text}`);
        continue;
      }
      const m = malformed[i % malformed.length];
      malformedSent += 1;
      const r = await call(main.url, { method: m.method ?? (m.body === undefined ? 'GET' : 'POST'), path: m.path, body: m.body, agent });
      if (r.status !== m.status || !r.json.error?.message) wrong.push(`case ${i % malformed.length}: ${r.status} ${r.text.slice(0, 200)}`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  for (const answer of await Promise.all(slowSenders)) assert.match(answer, /^HTTP\/1\.1 408/);
  agent.destroy();
  assert.equal(wrong.slice(0, 5), [], `${wrong.length} unexpected answers`);
  assert.is(malformedSent, 10_000);
  assert.is(valid, Math.ceil(total / 25));
  const after = await post(main.url, { query: trained.queries[0], n: 3 });
  assert.is(after.status, 200, 'still serving');
});

test('minielm serve: --catalog, answers, and SIGTERM stops it cleanly (exit 0)', async () => {
  const catalog = join(root, 'catalog.jsonl');
  await writeFile(catalog, products.slice(0, 50).map((p) => JSON.stringify(p)).join('\n'));
  const child = spawn(process.execPath, ['bin/minielm.js', 'serve', '--model', trained.dir, '--port', '0', '--catalog', catalog, '--catalog-words'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    await until(() => /listening on (\S+)/.test(stdout) || child.exitCode !== null, 'minielm serve to listen', 30_000);
    const url = /listening on (\S+)/.exec(stdout)?.[1];
    assert.ok(url, `no address printed: ${stdout} ${stderr}`);
    const r = await post(url!, { query: products[0].title.toLowerCase(), n: 3 }, 'v1/expand');
    assert.is(r.status, 200, r.text);
    child.kill('SIGTERM');
    assert.is(await exited, 0, stderr);
    assert.match(stderr, /SIGTERM/);
    assert.match(stderr, /stopped/);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test.run();
