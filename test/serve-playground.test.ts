// The playground page of GET / in real headless Chromium (Debian's /usr/bin/chromium driven by playwright-core;
// .ci/run installs both): type a query, click Rewrite, and the page shows the rewrites the API gives for the
// same request, and with a catalog, one column per text with the products it retrieved. The page makes no
// request beyond the server it came from and throws no script error. Skips loudly without Chromium.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { Rewriter } from '../lib/serve/rewriter.ts';
import { startRewriteServer, type RewriteServer } from '../lib/serve/http.ts';
import { Bm25Retriever, type Product } from '../lib/retrieval/index.ts';
import { trainedRewriter, type TrainedRewriter } from './helpers/rewriter-model.ts';
import { skipLoudly } from './helpers/skip.ts';

const CHROMIUM = '/usr/bin/chromium';
// As the machine notes prescribe: no sandbox (root), no GPU, and none of Chromium's own background traffic,
// which this machine's closed network would refuse.
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let playwright: typeof import('playwright-core') | null = null;
let missing = '';
if (!existsSync(CHROMIUM)) missing = `${CHROMIUM} is absent (apt-get install -y chromium)`;
else {
  try {
    playwright = await import('playwright-core');
  } catch (err) {
    missing = `playwright-core cannot be loaded (npm install): ${(err as Error).message}`;
  }
}

let root = '';
let trained: TrainedRewriter;
let products: Product[] = [];
let rewriter: Rewriter;
let withCatalog: RewriteServer;
let rewritesOnly: RewriteServer;
let context: BrowserContext;

interface ApiRewrite { text: string; logprob: number }
interface ApiExpansion { query: string; rewrites: ApiRewrite[]; products: { id: string; title: string; from: { text: string; query: boolean; rank: number }[] }[] }

async function api<T>(server: RewriteServer, path: string, body: unknown): Promise<T> {
  const res = await fetch(new URL(path, server.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.is(res.status, 200, `${path}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

/** Opens the page, types `query`, clicks Rewrite and waits for the status line to report the answer. */
async function ask(server: RewriteServer, query: string): Promise<{ page: Page; status: string; requests: string[]; errors: string[] }> {
  const page = await context.newPage();
  const requests: string[] = [];
  const errors: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/favicon/.test(m.location().url)) errors.push(`console: ${m.text()}`);
  });
  const response = await page.goto(server.url, { waitUntil: 'load', timeout: 30_000 });
  assert.is(response?.status(), 200);
  assert.is(await page.title(), 'minielm rewriter playground');
  await page.fill('#query', query);
  await page.click('button[type=submit]');
  await page.waitForFunction(() => {
    const s = document.getElementById('status');
    return s !== null && (s.className === 'error' || / ms: /.test(s.textContent ?? ''));
  }, undefined, { timeout: 30_000 });
  const status = (await page.textContent('#status')) ?? '';
  return { page, status, requests, errors };
}

/** Each result column as the page shows it: its heading and its items' own text (without the logprob span). */
function columns(page: Page): Promise<{ heading: string; items: string[] }[]> {
  return page.$$eval('#results .list', (lists) => lists.map((list) => ({
    heading: list.querySelector('h3')?.childNodes[0]?.textContent ?? '',
    items: [...list.querySelectorAll('li')].map((li) => li.childNodes[0]?.textContent ?? ''),
  })));
}

if (missing) {
  for (const name of ['playground page: rewrites', 'playground page: products per rewrite']) skipLoudly(test, name, missing);
} else {
  test.before(async () => {
    root = await mkdtemp(join(tmpdir(), 'minielm-playground-'));
    trained = await trainedRewriter(root);
    products = [...trained.fixture.catalog.products.values()].map((p) => ({ id: p.id, title: p.title }));
    const bm25 = new Bm25Retriever();
    await bm25.index(products);
    rewriter = await Rewriter.load(trained.dir);
    withCatalog = await startRewriteServer(rewriter, { port: 0, retriever: bm25, products });
    rewritesOnly = await startRewriteServer(rewriter, { port: 0 });
    context = await playwright!.chromium.launchPersistentContext(join(root, 'chromium-profile'), {
      executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 60_000,
    });
  });

  test.after(async () => {
    await context?.close();
    await withCatalog?.shutdown();
    await rewritesOnly?.shutdown();
    await rewriter?.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  test('playground page: rewrites', async () => {
    const query = trained.queries[0];
    const { page, status, requests, errors } = await ask(rewritesOnly, query);
    // The page's defaults: 5 rewrites, beam search.
    const expected = await api<{ rewrites: ApiRewrite[] }>(rewritesOnly, 'v1/rewrite', { query, n: 5, strategy: 'beam' });
    assert.ok(expected.rewrites.length > 0, 'the model gives no rewrite for the test query');
    assert.match(status, new RegExp(`^\\d+ ms: ${expected.rewrites.length} rewrites$`));
    const shown = await columns(page);
    assert.is(shown.length, 1);
    assert.is(shown[0].heading, `Rewrites of "${query}"`);
    assert.equal(shown[0].items, expected.rewrites.map((r) => r.text));
    const logprobs = await page.$$eval('#results li .logprob', (spans) => spans.map((s) => s.textContent));
    assert.equal(logprobs, expected.rewrites.map((r) => r.logprob.toFixed(2)));
    assert.equal(errors, []);
    for (const url of requests) assert.ok(url.startsWith(rewritesOnly.url), `the page requested ${url}`);
    assert.ok(requests.some((u) => u.endsWith('/v1/rewrite')), `no POST v1/rewrite among ${requests.join(', ')}`);
    await page.close();
  });

  test('playground page: products per rewrite', async () => {
    // A query some of whose products come only through a rewrite, so that every part of the page shows
    // (the tiny test model rewrites some queries into texts that retrieve nothing).
    const onlyThrough = (e: ApiExpansion) => e.products.filter((p) => !p.from.some((f) => f.query)).length;
    let query = '';
    let expected: ApiExpansion | undefined;
    for (const q of trained.queries.slice(0, 40)) {
      // The page's defaults: 5 rewrites, beam search.
      const e = await api<ApiExpansion>(withCatalog, 'v1/expand', { query: q, n: 5, strategy: 'beam' });
      if (onlyThrough(e) > 0) {
        [query, expected] = [q, e];
        break;
      }
    }
    assert.ok(expected, 'no training query has a product retrieved only through one of its rewrites');
    const onlyThroughRewrites = onlyThrough(expected);
    const { page, status, requests, errors } = await ask(withCatalog, query);
    assert.match(status, new RegExp(`^\\d+ ms: ${expected.rewrites.length} rewrites, ${expected.products.length} products, ${onlyThroughRewrites} of them only through a rewrite$`));
    const shown = await columns(page);
    // One column for the query, then one per rewrite, each listing the titles its own retrieval brought, by rank.
    assert.equal(shown.map((c) => c.heading), [`query: ${query}`, ...expected.rewrites.map((r) => r.text)]);
    for (const column of shown) {
      const text = column.heading.startsWith('query: ') ? query : column.heading;
      const titles = expected.products
        .flatMap((p) => p.from.filter((f) => f.text === text).map((f) => ({ rank: f.rank, title: p.title })))
        .sort((a, b) => a.rank - b.rank)
        .map((x) => x.title);
      assert.equal(column.items, titles.length ? titles : ['(no products)'], `products of "${text}"`);
    }
    const shownTitles = new Set(shown.flatMap((c) => c.items));
    for (const p of expected.products) assert.ok(shownTitles.has(p.title), `product ${p.id} "${p.title}" is not shown`);
    // Products the query alone missed are marked new, in the columns of the rewrites that brought them.
    const marked = await page.$$eval('#results li.new', (items) => items.map((li) => li.textContent ?? ''));
    const newTitles = new Set(expected.products.filter((p) => !p.from.some((f) => f.query)).map((p) => p.title));
    assert.ok(marked.length >= onlyThroughRewrites, `${marked.length} items marked new`);
    for (const title of marked) assert.ok(newTitles.has(title), `"${title}" is marked new but the query retrieved it`);
    assert.equal(errors, []);
    for (const url of requests) assert.ok(url.startsWith(withCatalog.url), `the page requested ${url}`);
    assert.ok(requests.some((u) => u.endsWith('/v1/expand')), `no POST v1/expand among ${requests.join(', ')}`);
    // MINIELM_PLAYGROUND_SCREENSHOT=file.png keeps a picture of the page for a person to look at.
    if (process.env.MINIELM_PLAYGROUND_SCREENSHOT) await page.screenshot({ path: process.env.MINIELM_PLAYGROUND_SCREENSHOT, fullPage: true });
    await page.close();
  });
}

test.run();
