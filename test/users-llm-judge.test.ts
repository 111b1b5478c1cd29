// The LLM judge against a local chat-completions server that misbehaves on purpose. The first word of the
// query picks the server's behaviour; the server counts requests per query so a test can check retries and
// cache hits.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlmJudge, parseEngagementReply, judgeMessages } from '../lib/users/llm-judge.ts';
import { OpenAIChatClient } from '../lib/users/chat-client.ts';
import { generateProfiles } from '../lib/users/profiles.ts';
import type { Product } from '../lib/data/types.ts';
import { MinielmError } from '../lib/errors.ts';

const profile = generateProfiles(1, 1)[0];
const products: Product[] = Array.from({ length: 10 }, (_, i) => ({ id: `p${i}`, title: `Product ${i}`, brand: 'Acme', price: 10 + i }));
const CORRECT = '{"clicks": 3, "add_to_cart": 2, "purchases": 1}';

let server: Server;
let baseURL = '';
const hits = new Map<string, number>();
let inFlight = 0;
let maxInFlight = 0;
let lastAuth: string | undefined;
const dir = mkdtempSync(join(tmpdir(), 'minielm-judge-'));

function reply(res: ServerResponse, content: string): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }] }));
}

function handle(req: IncomingMessage, res: ServerResponse, body: string): void {
  lastAuth = req.headers.authorization;
  if (req.url !== '/v1/chat/completions' || req.method !== 'POST') {
    res.writeHead(404).end('not found');
    return;
  }
  const parsed = JSON.parse(body) as { messages: { role: string; content: string }[] };
  const user = parsed.messages.find((m) => m.role === 'user')?.content ?? '';
  const query = /searched the store for: "([^"]*)"/.exec(user)?.[1] ?? '';
  const mode = query.split(' ')[0];
  const n = (hits.get(query) ?? 0) + 1;
  hits.set(query, n);
  const slow = (ms: number, then: () => void): void => {
    const t = setTimeout(then, ms);
    res.on('close', () => clearTimeout(t));
  };
  switch (mode) {
    case 'correct': return reply(res, CORRECT);
    case 'fenced': return reply(res, 'Sure!\n```json\n{"Clicks": "four", "Add to cart": 2, "Purchases": 0}\n```');
    case 'words': return reply(res, "I'd click three of them, add two to my cart and buy one.");
    case 'labelled': return reply(res, 'Clicks: 4\nAdd to cart: 2\nPurchases: 5');
    case 'outofrange': return reply(res, '{"clicks": 25, "add_to_cart": -1, "purchases": 0}');
    case 'missing': return reply(res, '{"clicks": 3}');
    case 'bare': return reply(res, '3');
    case 'missingthenok': return reply(res, n === 1 ? '{"clicks": 3, "purchases": 1}' : CORRECT);
    case 'malformedthenok':
      if (n === 1) {
        res.writeHead(200, { 'content-type': 'application/json' });
        return void res.end('{"choices": [ this is not json');
      }
      return reply(res, CORRECT);
    case 'nocontent':
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end('{"choices": []}');
    case 'err500thenok':
      if (n === 1) return void res.writeHead(500).end('internal error');
      return reply(res, CORRECT);
    case 'always500': return void res.writeHead(503).end('overloaded');
    case 'unauthorized': return void res.writeHead(401).end('{"error": "bad key"}');
    case 'slow': return slow(2000, () => reply(res, CORRECT));
    case 'slowoncethenok':
      if (n === 1) return slow(2000, () => reply(res, CORRECT));
      return reply(res, CORRECT);
    case 'drop': return void req.socket.destroy();
    case 'droponcethenok':
      if (n === 1) return void req.socket.destroy();
      return reply(res, CORRECT);
    case 'concurrent':
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      return slow(30, () => {
        inFlight--;
        reply(res, CORRECT);
      });
    default: return reply(res, CORRECT);
  }
}

test.before(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => handle(req, res, body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});

test.after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

const makeJudge = (extra: Record<string, unknown> = {}): LlmJudge =>
  new LlmJudge({ baseURL, model: 'mock-model', apiKey: 'test-key', timeoutMs: 300, retries: 2, backoffMs: 1, maxBackoffMs: 5, concurrency: 4, ...extra });

const ask = (judge: LlmJudge, query: string, list: Product[] = products) => judge.judgeBatch([{ profile, query, products: list }]).then((r) => r[0]);

async function rejects(p: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, MinielmError, `expected MinielmError, got ${String(err)}`);
    assert.is((err as MinielmError).code, code, (err as Error).message);
    assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable('expected a rejection');
}

test('parse: JSON, fenced JSON with loose keys, words, labels', () => {
  assert.equal(parseEngagementReply(CORRECT, 10).engagement, { clicks: 3, addToCart: 2, purchases: 1, listLength: 10 });
  assert.equal(parseEngagementReply('```json\n{"Clicks": "four", "Add to cart": 2, "Purchases": 0}\n```', 10).engagement, { clicks: 4, addToCart: 2, purchases: 0, listLength: 10 });
  assert.equal(parseEngagementReply("I'd click three, add two to my cart and buy one.", 10).engagement, { clicks: 3, addToCart: 2, purchases: 1, listLength: 10 });
  assert.equal(parseEngagementReply('clicks 5 cart 2 purchases 1', 10).engagement, { clicks: 5, addToCart: 2, purchases: 1, listLength: 10 });
  assert.equal(parseEngagementReply('Clicks: none. Add to cart: none. Purchases: none.', 10).engagement, { clicks: 0, addToCart: 0, purchases: 0, listLength: 10 });
  assert.equal(parseEngagementReply('{"clicks": "all", "carts": 1, "bought": 1}', 6).engagement, { clicks: 6, addToCart: 1, purchases: 1, listLength: 6 });
});

test('parse: clipping into [0, n] and the monotone funnel are applied and flagged', () => {
  const a = parseEngagementReply('{"clicks": 25, "add_to_cart": -1, "purchases": 0}', 10);
  assert.equal(a.engagement, { clicks: 10, addToCart: 0, purchases: 0, listLength: 10 });
  assert.ok(a.rangeClipped);
  const b = parseEngagementReply('Clicks: 4\nAdd to cart: 2\nPurchases: 5', 10);
  assert.equal(b.engagement, { clicks: 4, addToCart: 2, purchases: 2, listLength: 10 });
  assert.ok(b.funnelClipped && !b.rangeClipped);
});

test('parse: missing fields and bare numbers are refused, never guessed', () => {
  for (const bad of ['{"clicks": 3}', '3', 'I like these products', '{"clicks": "many", "add_to_cart": 1, "purchases": 0}', '']) {
    assert.throws(() => parseEngagementReply(bad, 10), (err: Error) => (err as MinielmError).code === 'MINIELM_JUDGE' && /could not read/.test(err.message), bad);
  }
});

test('the prompt carries the profile, the query and every product', () => {
  const [system, user] = judgeMessages(profile, 'red shoes', products.slice(0, 2));
  assert.is(system.role, 'system');
  assert.ok(user.content.includes('"red shoes"') && user.content.includes('Product 1') && user.content.includes(profile.likedBrands[0]));
});

test('a correct answer is returned as parsed, with the API key sent', async () => {
  const judge = makeJudge();
  assert.equal(await ask(judge, 'correct one'), { clicks: 3, addToCart: 2, purchases: 1, listLength: 10 });
  assert.is(lastAuth, 'Bearer test-key');
});

test('words, fenced JSON, labels, out-of-range counts', async () => {
  const judge = makeJudge();
  assert.equal(await ask(judge, 'words q'), { clicks: 3, addToCart: 2, purchases: 1, listLength: 10 });
  assert.equal(await ask(judge, 'fenced q'), { clicks: 4, addToCart: 2, purchases: 0, listLength: 10 });
  assert.equal(await ask(judge, 'labelled q'), { clicks: 4, addToCart: 2, purchases: 2, listLength: 10 });
  assert.equal(await ask(judge, 'outofrange q', products.slice(0, 5)), { clicks: 5, addToCart: 0, purchases: 0, listLength: 5 });
  assert.is(judge.stats.funnelClipped, 1);
  assert.is(judge.stats.rangeClipped, 1);
});

test('missing fields: re-asked, then a clear MINIELM_JUDGE error', async () => {
  const judge = makeJudge({ parseAttempts: 3 });
  await rejects(ask(judge, 'missing q'), 'MINIELM_JUDGE', /3 unreadable answer\(s\).*add_to_cart|3 unreadable answer\(s\).*addToCart/);
  assert.is(hits.get('missing q'), 3);
  await rejects(ask(judge, 'bare q'), 'MINIELM_JUDGE', /unreadable/);
  assert.is(judge.stats.unreadableReplies, 6);
});

test('missing fields once, then a good answer: recovers', async () => {
  const judge = makeJudge();
  assert.equal(await ask(judge, 'missingthenok q'), { clicks: 3, addToCart: 2, purchases: 1, listLength: 10 });
  assert.is(hits.get('missingthenok q'), 2);
});

test('malformed protocol JSON once, then success: the client retries', async () => {
  const judge = makeJudge();
  assert.equal((await ask(judge, 'malformedthenok q')).clicks, 3);
  assert.is(hits.get('malformedthenok q'), 2);
});

test('a body without choices keeps failing: MINIELM_JUDGE after all retries', async () => {
  const judge = makeJudge({ retries: 2 });
  await rejects(ask(judge, 'nocontent q'), 'MINIELM_JUDGE', /failed 3 time\(s\).*choices/);
  assert.is(hits.get('nocontent q'), 3);
});

test('HTTP 500 then success: recovers', async () => {
  const judge = makeJudge();
  assert.equal((await ask(judge, 'err500thenok q')).purchases, 1);
  assert.is(hits.get('err500thenok q'), 2);
});

test('persistent 503: bounded retries, then an error quoting the status', async () => {
  const judge = makeJudge({ retries: 3 });
  await rejects(ask(judge, 'always500 q'), 'MINIELM_JUDGE', /failed 4 time\(s\).*HTTP 503/);
  assert.is(hits.get('always500 q'), 4);
});

test('HTTP 401 is not retried and says how to fix the key', async () => {
  const judge = makeJudge();
  await rejects(ask(judge, 'unauthorized q'), 'MINIELM_JUDGE', /HTTP 401.*MINIELM_JUDGE_API_KEY/);
  assert.is(hits.get('unauthorized q'), 1);
});

test('slow replies beyond the timeout: MINIELM_TIMEOUT naming the limit', async () => {
  const judge = makeJudge({ timeoutMs: 100, retries: 1 });
  await rejects(ask(judge, 'slow q'), 'MINIELM_TIMEOUT', /100 ms.*2 attempt\(s\).*--timeout-ms/);
  assert.is(hits.get('slow q'), 2);
});

test('one slow reply, then a fast one: recovers', async () => {
  const judge = makeJudge({ timeoutMs: 100 });
  assert.equal((await ask(judge, 'slowoncethenok q')).clicks, 3);
  assert.is(hits.get('slowoncethenok q'), 2);
});

test('dropped connections: recovers after one, clear error when it keeps happening', async () => {
  const judge = makeJudge({ retries: 2 });
  assert.equal((await ask(judge, 'droponcethenok q')).clicks, 3);
  assert.is(hits.get('droponcethenok q'), 2);
  await rejects(ask(judge, 'drop q'), 'MINIELM_JUDGE', /failed 3 time\(s\).*connection dropped/);
  assert.is(hits.get('drop q'), 3);
});

test('nothing listening: MINIELM_UNREACHABLE', async () => {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const judge = new LlmJudge({ baseURL: `http://127.0.0.1:${port}/v1`, model: 'm', retries: 1, backoffMs: 1 });
  await rejects(ask(judge, 'correct q'), 'MINIELM_UNREACHABLE', /127\.0\.0\.1.*--base-url/);
});

test('the concurrency limit bounds requests in flight', async () => {
  inFlight = 0;
  maxInFlight = 0;
  const judge = makeJudge({ concurrency: 3 });
  const reqs = Array.from({ length: 12 }, (_, i) => ({ profile, query: `concurrent ${i}`, products }));
  const out = await judge.judgeBatch(reqs);
  assert.is(out.length, 12);
  assert.ok(maxInFlight <= 3, `max in flight ${maxInFlight}`);
  assert.ok(maxInFlight >= 2, `requests should overlap, max in flight ${maxInFlight}`);
});

test('identical requests in one batch are asked once', async () => {
  const judge = makeJudge();
  const out = await judge.judgeBatch([
    { profile, query: 'correct dedupe', products },
    { profile, query: 'correct dedupe', products },
  ]);
  assert.equal(out[0], out[1]);
  assert.is(hits.get('correct dedupe'), 1);
});

test('persistent cache: a second identical call, even from a new judge, does not hit the server', async () => {
  const cacheFile = join(dir, 'cache', 'judge.jsonl');
  const first = await ask(makeJudge({ cacheFile }), 'correct cached');
  assert.is(hits.get('correct cached'), 1);
  const again = makeJudge({ cacheFile });
  assert.equal(await ask(again, 'correct cached'), first);
  assert.is(hits.get('correct cached'), 1);
  assert.is(again.stats.cacheHits, 1);
  assert.is(again.stats.requests, 0);
  // Anything that changes the answer changes the key: temperature, model, products, profile.
  await ask(makeJudge({ cacheFile, temperature: 0.7 }), 'correct cached');
  await ask(makeJudge({ cacheFile, model: 'other-model' }), 'correct cached');
  await ask(makeJudge({ cacheFile }), 'correct cached', products.slice(0, 9));
  await makeJudge({ cacheFile }).judgeBatch([{ profile: generateProfiles(2, 1)[1], query: 'correct cached', products }]);
  assert.is(hits.get('correct cached'), 5);
  const lines = readFileSync(cacheFile, 'utf8').trim().split('\n');
  assert.is(lines.length, 5);
  assert.is(JSON.parse(lines[0]).reply, CORRECT);
});

test('failed answers are not cached: the next call asks again', async () => {
  const cacheFile = join(dir, 'fail.jsonl');
  const judge = makeJudge({ cacheFile, parseAttempts: 1 });
  await rejects(ask(judge, 'missing nocache'), 'MINIELM_JUDGE', /unreadable/);
  await rejects(ask(judge, 'missing nocache'), 'MINIELM_JUDGE', /unreadable/);
  assert.is(hits.get('missing nocache'), 2);
});

test('the caller AbortSignal cancels a pending request with MINIELM_ABORTED (no retry)', async () => {
  const judge = makeJudge({ timeoutMs: 5000 });
  const controller = new AbortController();
  const pending = judge.judgeBatch([{ profile, query: 'slow cancelled', products }], { signal: controller.signal });
  setTimeout(() => controller.abort(), 20);
  await rejects(pending, 'MINIELM_ABORTED', /cancelled/);
  assert.is(hits.get('slow cancelled'), 1);
});

test('bad options are refused up front', () => {
  assert.throws(() => new LlmJudge({ model: 'm' }), /--base-url/);
  assert.throws(() => new OpenAIChatClient({ baseURL: 'not a url', model: 'm' }), /not a URL/);
  assert.throws(() => new OpenAIChatClient({ baseURL: 'http://127.0.0.1:1/v1', model: '' }), /--model/);
  assert.throws(() => new OpenAIChatClient({ baseURL: 'http://127.0.0.1:1/v1', model: 'm', concurrency: 0 }), /concurrency/);
});

test.run();
