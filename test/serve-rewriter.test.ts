// The embeddable Rewriter on a small trained model: micro-batched results equal the same request run alone
// (beam and seeded sampling, mixed groups), rewrites are normalised and deduplicated with the query left
// out, the LRU cache counts hits and misses, AbortSignal and the bounded queue drop or refuse requests,
// close() rejects what is pending, expand() merges retrieval lists with provenance, options are checked.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MinielmError } from '../lib/errors.ts';
import { Model } from '../lib/model/model.ts';
import { generate } from '../lib/model/generate.ts';
import { Tokenizer } from '../lib/tokenizer/index.ts';
import { Bm25Retriever, type Retriever } from '../lib/retrieval/index.ts';
import { catalogWords, DEFAULT_HYGIENE, hygieneOptions } from '../lib/rewrite/hygiene.ts';
import { promptIds, rewriteText } from '../lib/rewrite/format.ts';
import { native } from '../lib/native.ts';
import { FeedbackExpander } from '../lib/rewrite/feedback.ts';
import { distinctRewrites, InvalidOptionError, Rewriter, type RewriteOptions } from '../lib/serve/rewriter.ts';
import { trainedRewriter, type TrainedRewriter } from './helpers/rewriter-model.ts';

let root = '';
let trained: TrainedRewriter;
let queries: string[] = [];
const open: Rewriter[] = [];

async function load(options: Parameters<typeof Rewriter.load>[1] = {}): Promise<Rewriter> {
  const r = await Rewriter.load(trained.dir, options);
  open.push(r);
  return r;
}

async function rejects(promise: Promise<unknown>, code: string, pattern?: RegExp): Promise<MinielmError> {
  try {
    await promise;
  } catch (err) {
    assert.instance(err, MinielmError, `expected a MinielmError, got ${String(err)}`);
    const e = err as MinielmError;
    assert.is(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return e;
  }
  return assert.unreachable(`expected a rejection with ${code}`) as never;
}

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'minielm-serve-'));
  trained = await trainedRewriter(root);
  // Queries of different token lengths, so batched prompts really differ in length.
  queries = trained.queries.slice(0, 12);
});
test.after(async () => {
  for (const r of open) await r.close();
  await rm(root, { recursive: true, force: true });
});

/** Every request run concurrently (one tick, so micro-batched), then each again alone. */
// The tests that count decodes send every request in one synchronous burst; a request enqueued after the
// first one's maxWaitMs starts a decode of its own (as it should), which on a loaded 2-core machine a 5 ms
// window allowed. 50 ms holds the burst together without slowing the suites much.
const WAIT_MS = 50;

async function batchedVsAlone(r: Rewriter, requests: { query: string; options: RewriteOptions }[]): Promise<void> {
  const before = r.stats().batches;
  const together = await Promise.all(requests.map((q) => r.rewrite(q.query, q.options)));
  const batches = r.stats().batches - before;
  const groups = new Set(requests.map((q) => JSON.stringify(q.options))).size;
  assert.is(batches, groups, `${requests.length} concurrent requests in ${groups} option groups ran as ${batches} native decodes`);
  for (let i = 0; i < requests.length; i++) {
    const alone = await r.rewrite(requests[i].query, requests[i].options);
    assert.equal(together[i], alone, `request ${i} ("${requests[i].query}", ${JSON.stringify(requests[i].options)}): batched vs alone`);
  }
  assert.is(r.stats().batches - before, groups + requests.length, 'each request run alone is one decode of its own');
}

test('micro-batched beam search gives each request exactly what it gets alone', async () => {
  const r = await load({ cacheSize: 0, maxWaitMs: WAIT_MS });
  const lengths = new Set(queries.map((q) => trained.fixture.tokenizer.encode(q).length));
  assert.ok(lengths.size >= 3, `prompts of ${lengths.size} different lengths`);
  await batchedVsAlone(r, queries.map((query) => ({ query, options: { n: 6 } })));
  // And against the decoder itself: the request's prompt alone, the first beams the same as the rewriter's.
  const [first] = await r.rewrite(queries[0], { n: 6, includeQuery: true });
  assert.type(first.text, 'string');
  assert.ok(Number.isFinite(first.logprob) && first.logprob < 0, `logprob ${first.logprob}`);
});

test('micro-batched seeded sampling gives each request exactly what it gets alone', async () => {
  const r = await load({ cacheSize: 0, maxWaitMs: WAIT_MS });
  await batchedVsAlone(r, queries.map((query) => ({ query, options: { n: 5, strategy: 'sample', seed: 7, temperature: 1.3, topP: 0.9 } })));
  // Another seed, other samples (for at least one query): the seed is part of the request.
  const a = await r.rewriteBatch(queries, { n: 5, strategy: 'sample', seed: 7, temperature: 1.3, topP: 0.9 });
  const b = await r.rewriteBatch(queries, { n: 5, strategy: 'sample', seed: 8, temperature: 1.3, topP: 0.9 });
  assert.not.equal(a, b);
});

test('bf16 weights: batched equals alone as well', async () => {
  const r = await load({ cacheSize: 0, maxWaitMs: WAIT_MS, weights: 'bf16' });
  assert.is(r.settings.weights, 'bf16');
  await batchedVsAlone(r, queries.slice(0, 6).map((query) => ({ query, options: { n: 4 } })));
});

test("weights 'auto' (the default) is bf16 where the decoder has AMX tiles, else fp32; 'fp32' decodes as generate() does", async () => {
  const amx = native.decodeBf16Isa() === 'amx';
  for (const options of [{}, { weights: 'auto' as const }]) assert.is((await load(options)).settings.weights, amx ? 'bf16' : 'fp32');
  const fp32 = await load({ cacheSize: 0, weights: 'fp32' });
  const bf16 = await load({ cacheSize: 0, weights: 'bf16' });
  const auto = await load({ cacheSize: 0 });
  const q = queries[0];
  assert.equal(await auto.rewrite(q, { n: 6 }), await (amx ? bf16 : fp32).rewrite(q, { n: 6 }));
  // The fp32 rewrites are the model's own fp32 beams.
  const model = await Model.load(trained.dir);
  const tok = await Tokenizer.load(trained.dir);
  const beams = await generate(model, [promptIds(tok, q, model.config.n_ctx - fp32.settings.maxNewTokens)], {
    strategy: 'beam', numBeams: 6, numReturnSequences: 6, maxNewTokens: fp32.settings.maxNewTokens, eosTokenId: tok.eosId, ...hygieneOptions(DEFAULT_HYGIENE),
  });
  assert.equal((await fp32.rewrite(q, { n: 6 })).map((r) => r.logprob), distinctRewrites(beams[0].map((g) => ({ text: rewriteText(tok, g.tokens), logprob: g.logprob }))).filter((r) => r.text.toLowerCase() !== q.toLowerCase()).map((r) => r.logprob));
  await model.dispose();
});

test('requests with different n or strategy go to different decodes, each result as alone', async () => {
  const r = await load({ cacheSize: 0, maxWaitMs: WAIT_MS });
  const kinds: RewriteOptions[] = [{ n: 4 }, { n: 7 }, { n: 4, strategy: 'sample', seed: 3 }, { n: 4, strategy: 'sample', seed: 4 }];
  await batchedVsAlone(r, queries.slice(0, 8).map((query, i) => ({ query, options: kinds[i % kinds.length] })));
});

test('maxBatch caps the sequences of one decode; maxBatch 1 is one decode per request', async () => {
  const r = await load({ cacheSize: 0, maxWaitMs: WAIT_MS, maxBatch: 12 });
  const before = r.stats();
  const lists = await Promise.all(queries.slice(0, 6).map((q) => r.rewrite(q, { n: 4 })));
  const after = r.stats();
  assert.is(after.batches - before.batches, 2, '6 requests x 4 sequences at 12 per decode');
  assert.is(after.batchedSequences - before.batchedSequences, 24);
  const single = await load({ cacheSize: 0, maxWaitMs: WAIT_MS, maxBatch: 1 });
  const alone = await Promise.all(queries.slice(0, 6).map((q) => single.rewrite(q, { n: 4 })));
  assert.is(single.stats().batches, 6, 'a request larger than maxBatch still runs, alone');
  assert.equal(alone, lists);
});

test('rewrites are normalised and deduplicated, and the query is left out unless asked for', async () => {
  assert.equal(
    distinctRewrites([{ text: ' Drill  bits ', logprob: -1 }, { text: 'drill bits', logprob: -2 }, { text: '', logprob: -3 }, { text: 'saw\tblade', logprob: -4 }, { text: 'DRILL BITS', logprob: -5 }]),
    [{ text: 'Drill bits', logprob: -1 }, { text: 'saw blade', logprob: -4 }],
  );
  assert.equal(distinctRewrites([{ text: 'a', logprob: -3 }, { text: 'b', logprob: -1 }, { text: 'A', logprob: -2 }], true), [{ text: 'b', logprob: -1 }, { text: 'A', logprob: -2 }]);
  const r = await load({ cacheSize: 0 });
  const asked = trained.queries.slice(0, 40);
  const withQuery = await r.rewriteBatch(asked, { n: 10, includeQuery: true });
  const without = await r.rewriteBatch(asked.map((q) => `  ${q.replace(/ /g, "  ")} `), { n: 10 });
  let copies = 0;
  asked.forEach((q, i) => {
    for (const list of [withQuery[i], without[i]]) {
      const keys = list.map((x) => x.text.toLowerCase());
      assert.is(new Set(keys).size, keys.length, `no duplicates for "${q}"`);
      for (const x of list) assert.is(x.text, x.text.trim().replace(/\s+/g, ' '));
    }
    assert.ok(!without[i].some((x) => x.text.toLowerCase() === q), `"${q}" is not its own rewrite`);
    if (withQuery[i].some((x) => x.text.toLowerCase() === q)) copies += 1;
  });
  assert.ok(copies > 0, 'the model copies some queries among 10 beams, so leaving the query out was exercised');
});

test('the catalog word constraint keeps every rewritten word in the catalog', async () => {
  const titles = [...trained.fixture.catalog.products.values()].map((p) => p.title).slice(0, 60);
  const allowed = catalogWords(titles);
  const r = await load({ cacheSize: 0, words: titles });
  assert.ok(r.settings.wordConstraint);
  const lists = await r.rewriteBatch(queries, { n: 5 });
  let words = 0;
  for (const list of lists) for (const x of list) for (const w of x.text.split(' ')) {
    assert.ok(allowed.has(w), `"${w}" (in "${x.text}") is a catalog word`);
    words += 1;
  }
  assert.ok(words > 0, 'some rewrites came back');
});

test('the LRU cache answers repeats (normalised query, same options) and counts hits and misses', async () => {
  const r = await load({ cacheSize: 2 });
  const [a, b, c] = queries;
  const first = await r.rewrite(a, { n: 5 });
  assert.equal(r.stats(), { ...r.stats(), cacheHits: 0, cacheMisses: 1, cacheEntries: 1, batches: 1 });
  first.length = 0;  // the caller's copy: mutating it must not reach the cache
  const again = await r.rewrite(`  ${a.split(' ').join('   ')} `, { n: 5 });
  assert.is(r.stats().cacheHits, 1);
  assert.is(r.stats().batches, 1, 'a hit decodes nothing');
  assert.ok(again.length > 0);
  await r.rewrite(a, { n: 4 });
  assert.is(r.stats().cacheMisses, 2, 'other options, other entry');
  await r.rewrite(a, { n: 5, includeQuery: true });
  assert.is(r.stats().cacheHits, 2, 'includeQuery filters a cached list, it is not a separate entry');
  await r.rewrite(b, { n: 5 });
  await r.rewrite(c, { n: 5 });
  assert.is(r.stats().cacheEntries, 2, 'bounded by entries');
  const misses = r.stats().cacheMisses;
  await r.rewrite(a, { n: 5 });
  assert.is(r.stats().cacheMisses, misses + 1, 'the least recently used entry was evicted');
  const off = await load({ cacheSize: 0 });
  await off.rewrite(a, { n: 5 });
  await off.rewrite(a, { n: 5 });
  assert.equal([off.stats().cacheHits, off.stats().cacheMisses, off.stats().batches], [0, 0, 2], 'cacheSize 0: no cache');
});

test('an AbortSignal drops a request that has not started; the others in its window still run', async () => {
  const r = await load({ cacheSize: 0, maxWaitMs: 30 });
  await rejects(r.rewrite(queries[0], { signal: AbortSignal.abort() }), 'MINIELM_ABORTED');
  const controller = new AbortController();
  const dropped = r.rewrite(queries[0], { n: 4, signal: controller.signal });
  const kept = r.rewrite(queries[1], { n: 4 });
  assert.is(r.stats().queued, 2);
  controller.abort();
  assert.is(r.stats().queued, 1, 'the aborted request left the queue at once');
  await rejects(dropped, 'MINIELM_ABORTED', /AbortSignal/);
  const got = await kept;
  assert.is(r.stats().batchedRequests, 1, 'the decode held only the request still wanted');
  assert.is(r.stats().aborted, 1);
  assert.equal(got, await r.rewrite(queries[1], { n: 4 }));
});

test('a full queue refuses with MINIELM_OVERLOADED instead of growing', async () => {
  const r = await load({ cacheSize: 0, maxWaitMs: 20, queueLimit: 2 });
  const a = r.rewrite(queries[0], { n: 3 });
  const b = r.rewrite(queries[1], { n: 3 });
  const e = await rejects(r.rewrite(queries[2], { n: 3 }), 'MINIELM_OVERLOADED', /queueLimit is 2/);
  assert.match(e.message, /retry later/);
  await rejects(r.rewriteBatch(queries.slice(0, 3), { n: 3 }), 'MINIELM_OVERLOADED');
  assert.equal((await Promise.all([a, b])).length, 2, 'the queued requests are still answered');
  assert.is(r.stats().overloaded, 4);
  assert.equal((await r.rewriteBatch(queries.slice(0, 2), { n: 3 })).length, 2, 'room again once the queue drained');
});

test('close() rejects pending calls with MINIELM_ABORTED, refuses new ones and frees the model', async () => {
  const r = await Rewriter.load(trained.dir, { cacheSize: 0, maxWaitMs: 1000 });
  const pending = [r.rewrite(queries[0]), r.rewriteBatch(queries.slice(1, 3))];
  const closing = r.close();
  assert.is(r.close(), closing, 'close() is idempotent');
  for (const p of pending) await rejects(p, 'MINIELM_ABORTED', /closed/);
  await closing;
  assert.ok(r.closed);
  await rejects(r.rewrite(queries[0]), 'MINIELM_ABORTED', /closed/);
  // A decode already running is cancelled too.
  const running = await Rewriter.load(trained.dir, { cacheSize: 0, maxWaitMs: 0 });
  const inFlight = running.rewrite(queries[0], { n: 32 });
  assert.is(running.stats().running, 32);
  await running.close();
  await rejects(inFlight, 'MINIELM_ABORTED', /closed/);
  // fromModel: the model belongs to the caller and outlives the rewriter.
  const model = await Model.load(trained.dir);
  const tokenizer = await Tokenizer.load(trained.dir);
  const borrowed = await Rewriter.fromModel(model, tokenizer);
  await borrowed.rewrite(queries[0], { n: 2 });
  await borrowed.close();
  const out = await generate(model, [[tokenizer.sepId]], { maxNewTokens: 2 });
  assert.is(out.length, 1, 'the caller\'s model still decodes');
  await model.dispose();
});

test('expand() merges the lists of the query and its rewrites and says which brought each product', async () => {
  const r = await load({ cacheSize: 0 });
  // A retriever whose lists are known: the query's, then the same two lists for every rewrite.
  const fake: Retriever = {
    index: async () => undefined,
    search: async (texts) => texts.map((_, i) => (i === 0 ? ['a', 'b', 'a'] : i % 2 ? ['b', 'c'] : ['d', 'b'])),
  };
  const rrf = await r.expand(queries[0], fake, { n: 4 });
  assert.ok(rrf.rewrites.length >= 2, `${rrf.rewrites.length} rewrites`);
  assert.is(rrf.query, queries[0]);
  assert.is(rrf.products[0].id, 'b', 'in every list: first by reciprocal rank fusion');
  for (let i = 1; i < rrf.products.length; i++) assert.ok(rrf.products[i - 1].score >= rrf.products[i].score);
  const a = rrf.products.find((p) => p.id === 'a')!;
  assert.equal(a.from, [{ text: queries[0], query: true, rank: 1 }], 'a repeated id counts once, at its best rank');
  const c = rrf.products.find((p) => p.id === 'c')!;
  assert.equal(c.from.map((s) => s.text), rrf.rewrites.filter((_, i) => i % 2 === 0).map((x) => x.text), 'c came from the odd-numbered lists, the rewrites');
  assert.ok(c.from.every((s) => !s.query));
  const inter = await r.expand(queries[0], fake, { n: 4, merge: 'interleave', limit: 3 });
  assert.equal(inter.products.map((p) => p.id), ['a', 'b', 'd'], 'round robin over the lists by rank');
  // With a real BM25 index of the catalog.
  const bm25 = new Bm25Retriever();
  await bm25.index([...trained.fixture.catalog.products.values()]);
  const real = await r.expand(queries[0], bm25, { n: 5, k: 5 });
  assert.ok(real.products.length >= 5);
  assert.ok(real.products.some((p) => p.from.some((s) => s.query)), 'the query brings its own products');
  const lists = await bm25.search([real.query, ...real.rewrites.map((x) => x.text)], 5);
  assert.is(real.products.length, new Set(lists.flat()).size, 'the union of every list, each product once');
  await rejects(r.expand(queries[0], {} as Retriever), 'MINIELM_INVALID_ARGUMENT', /retriever/);
  await rejects(r.expand(queries[0], fake, { merge: 'sum' as 'rrf' }), 'MINIELM_INVALID_ARGUMENT', /merge/);
  await rejects(r.expand(queries[0], fake, { k: 0 }), 'MINIELM_INVALID_ARGUMENT', /^k must/);
});

test("expand({ select: 'fresh' }) sends the candidates that bring products the query's list lacks", async () => {
  const r = await load({ cacheSize: 0 });
  const all = await r.rewrite(queries[0], { n: 8 });
  assert.ok(all.length >= 4, `${all.length} candidates`);
  // The query's list is [q1, q2]; the best-ranked candidate re-finds it, the others each bring one new product.
  const listFor = (text: string): string[] => {
    const i = all.findIndex((x) => x.text === text);
    return i <= 0 ? ['q1', 'q2'] : ['q1', `new${i}`];
  };
  const fake: Retriever = { index: async () => undefined, search: async (texts) => texts.map(listFor) };
  const e = await r.expand(queries[0], fake, { select: 'fresh', n: 8, send: 2, k: 2 });
  assert.is(e.selection!.strategy, 'fresh');
  assert.equal(e.selection!.candidates.map((x) => x.text), all.map((x) => x.text), 'every candidate decoded, best first');
  assert.is(e.rewrites.length, 2);
  assert.not.ok(e.rewrites.some((x) => x.text === all[0].text), 'the candidate that only re-finds the query\'s products is not sent');
  assert.equal(e.rewrites.map((x) => x.text), [all[1].text, all[2].text], 'equally fresh candidates keep the model\'s order');
  assert.equal(e.products.map((p) => p.id).sort(), ['new1', 'new2', 'q1', 'q2']);
  // With the freshness weight at 0 it is the model's order again.
  const top = await r.expand(queries[0], fake, { select: 'fresh', n: 8, send: 2, k: 2, freshWeight: 0 });
  assert.equal(top.rewrites.map((x) => x.text), [all[0].text, all[1].text]);
  await rejects(r.expand(queries[0], fake, { select: 'fresh', freshWeight: -1 }), 'MINIELM_INVALID_ARGUMENT', /freshWeight/);
  await rejects(r.expand(queries[0], fake, { select: 'top', freshWeight: 1 }), 'MINIELM_INVALID_ARGUMENT', /freshWeight applies/);
});

test("expand({ select: 'relevance' }) sends the candidates whose new products a scorer rates relevant to the query", async () => {
  const r = await load({ cacheSize: 0 });
  const all = await r.rewrite(queries[0], { n: 8 });
  assert.ok(all.length >= 4, `${all.length} candidates`);
  // Every candidate brings one new product; only the last one's is "good".
  const last = all.length - 1;
  const listFor = (text: string): string[] => {
    const i = all.findIndex((x) => x.text === text);
    return i < 0 ? ['q1', 'q2'] : ['q1', `new${i}`];
  };
  const fake: Retriever = { index: async () => undefined, search: async (texts) => texts.map(listFor) };
  const asked: string[] = [];
  const scorer = {
    async scoreBatch(pairs: { query: string; product: { id: string; title: string } }[]) {
      for (const p of pairs) asked.push(`${p.query}|${p.product.title}`);
      return pairs.map((p) => (p.product.id === `new${last}` ? 1 : 0));
    },
  };
  const relevance = { scorer, titleOf: (id: string) => `title of ${id}` };
  const e = await r.expand(queries[0], fake, { select: 'relevance', relevance, n: 8, send: 2, k: 2 });
  assert.is(e.selection!.strategy, 'relevance');
  assert.equal(e.selection!.candidates.map((x) => x.text), all.map((x) => x.text));
  assert.equal(e.rewrites.map((x) => x.text), [all[last].text, all[0].text], 'the relevant one first, then the model\'s order');
  assert.ok(asked.every((a) => a.startsWith(`${queries[0].trim()}|title of new`)), 'only new products, scored against the query');
  assert.is(asked.length, all.length);
  await rejects(r.expand(queries[0], fake, { select: 'relevance' }), 'MINIELM_INVALID_ARGUMENT', /needs relevance: \{ scorer, titleOf \}/);
  await rejects(r.expand(queries[0], fake, { select: 'top', relevance }), 'MINIELM_INVALID_ARGUMENT', /relevance applies to select 'relevance'/);
  await rejects(r.expand(queries[0], fake, { select: 'relevance', relevance: { ...relevance, rankWeight: -1 } }), 'MINIELM_INVALID_ARGUMENT', /rankWeight/);
});

test("expand({ source: 'feedback' | 'both' }) adds pseudo-relevance feedback rewrites, marked as such", async () => {
  const r = await load({ cacheSize: 0 });
  const products = [...trained.fixture.catalog.products.values()];
  const bm25 = new Bm25Retriever();
  await bm25.index(products);
  const feedback = new FeedbackExpander(products);
  const q = queries[0];
  const expected = (await feedback.rewrites([q], bm25, 4))[0];
  assert.ok(expected.length > 0, 'the fixture catalog gives feedback words');
  const fb = await r.expand(q, bm25, { source: 'feedback', feedback, feedbackCount: 4, k: 5 });
  assert.equal(fb.rewrites, expected.map((text) => ({ text, logprob: 0, source: 'feedback' })), 'the feedback rewrites alone, best word first');
  const lists = await bm25.search([fb.query, ...expected], 5);
  assert.is(fb.products.length, new Set(lists.flat()).size);
  const model = await r.rewrite(q, { n: 3 });
  const both = await r.expand(q, bm25, { source: 'both', feedback, n: 3, feedbackCount: 4, k: 5 });
  assert.equal(both.rewrites.slice(0, model.length), model, "the model's rewrites first");
  assert.ok(both.rewrites.slice(model.length).every((x) => x.source === 'feedback'));
  const fresh = await r.expand(q, bm25, { source: 'feedback', feedback, select: 'fresh', send: 2, k: 5 });
  assert.is(fresh.selection!.strategy, 'fresh');
  assert.ok(fresh.rewrites.length <= 2 && fresh.selection!.candidates.every((x) => x.source === 'feedback'));
  const fake: Retriever = { index: async () => undefined, search: async (texts) => texts.map(() => []) };
  await rejects(r.expand(q, fake, { source: 'feedback' }), 'MINIELM_INVALID_ARGUMENT', /feedback: new FeedbackExpander/);
  await rejects(r.expand(q, fake, { source: 'rules' as 'model' }), 'MINIELM_INVALID_ARGUMENT', /source must be/);
  await rejects(r.expand(q, fake, { feedbackCount: 3 }), 'MINIELM_INVALID_ARGUMENT', /feedbackCount applies/);
  await rejects(r.expand(q, fake, { source: 'feedback', feedback, feedbackDepth: 0 }), 'MINIELM_INVALID_ARGUMENT', /feedbackDepth/);
});

test('every option is checked, with a coded error naming it', async () => {
  const bad: [Record<string, unknown>, string][] = [
    [{ weights: 'fp16' }, 'weights'], [{ maxBatch: 0 }, 'maxBatch'], [{ maxWaitMs: -1 }, 'maxWaitMs'], [{ cacheSize: 1.5 }, 'cacheSize'],
    [{ queueLimit: 0 }, 'queueLimit'], [{ threads: 0 }, 'threads'], [{ hygiene: { repetitionPenalty: 0 } }, 'hygiene.repetitionPenalty'],
    [{ words: 'drill' }, 'words'], [{ words: [3] }, 'words[0]'], [{ maxNewTokens: 32 }, 'maxNewTokens'], [{ maxbatch: 4 }, 'maxbatch'],
  ];
  for (const [options, name] of bad) {
    const e = await rejects(Rewriter.load(trained.dir, options as never), 'MINIELM_INVALID_ARGUMENT');
    assert.instance(e, InvalidOptionError);
    assert.is((e as InvalidOptionError).option, name, `${JSON.stringify(options)}: ${e.message}`);
    assert.ok(e.message.includes(name), e.message);
  }
  await rejects(Rewriter.load(join(root, 'missing')), 'MINIELM_NOT_FOUND');
  const r = await load();
  const badCall: [unknown, Record<string, unknown>, string][] = [
    ['', {}, 'query'], [7, {}, 'query'], ['drill', { n: 0 }, 'n'], ['drill', { strategy: 'greedy' }, 'strategy'],
    ['drill', { temperature: 2 }, 'temperature'], ['drill', { strategy: 'sample', topP: 0 }, 'topP'], ['drill', { strategy: 'sample', seed: -1 }, 'seed'],
    ['drill', { signal: {} }, 'signal'], ['drill', { includeQuery: 'yes' }, 'includeQuery'], ['drill', { beams: 3 }, 'beams'],
  ];
  for (const [query, options, name] of badCall) {
    const e = await rejects(r.rewrite(query as string, options as RewriteOptions), 'MINIELM_INVALID_ARGUMENT');
    assert.is((e as InvalidOptionError).option, name, `${JSON.stringify([query, options])}: ${e.message}`);
  }
  const e = await rejects(r.rewriteBatch(['drill', ' '], {}), 'MINIELM_INVALID_ARGUMENT');
  assert.is((e as InvalidOptionError).option, 'queries[1]');
  assert.equal(await r.rewriteBatch([]), []);
});

test.run();
