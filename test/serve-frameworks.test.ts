// createRewriteHandler inside real Express 5 and Fastify 5 apps, wired as the README shows: a mount path,
// a body express.json() or Fastify already parsed, the app's own routes untouched, errors as JSON 4xx.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import Fastify from 'fastify';
import { Rewriter } from '../lib/serve/rewriter.ts';
import { createRewriteHandler } from '../lib/serve/http.ts';
import { Bm25Retriever } from '../lib/retrieval/index.ts';
import { trainedRewriter, type TrainedRewriter } from './helpers/rewriter-model.ts';

let root = '';
let trained: TrainedRewriter;
let rewriter: Rewriter;
let bm25: Bm25Retriever;

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'minielm-frameworks-'));
  trained = await trainedRewriter(root);
  rewriter = await Rewriter.load(trained.dir, { cacheSize: 0 });
  bm25 = new Bm25Retriever();
  await bm25.index([...trained.fixture.catalog.products.values()]);
});

test.after(async () => {
  await rewriter.close();
  await rm(root, { recursive: true, force: true });
});

async function postJson(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

test('Express: mounted at /rewriter after express.json(), other routes and next() stay the app\'s', async () => {
  const handler = createRewriteHandler(rewriter, { retriever: bm25 });
  const app = express();
  app.use(express.json());
  app.use('/rewriter', handler);
  app.get('/app', (_req, res) => void res.send('the app'));
  app.use((_req, res) => void res.status(404).send('app 404'));
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const q = trained.queries[0];
    const r = await postJson(`${base}/rewriter/v1/rewrite`, { query: q, n: 3 });
    assert.is(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.rewrites, await rewriter.rewrite(q, { n: 3 }), 'the body express.json() parsed is the one answered');
    const e = await postJson(`${base}/rewriter/v1/expand`, { query: q, n: 2, k: 3 });
    assert.is(e.status, 200);
    assert.ok(Array.isArray(e.json.products) && (e.json.products as unknown[]).length > 0);
    const bad = await postJson(`${base}/rewriter/v1/rewrite`, { query: q, n: 'ten' });
    assert.is(bad.status, 400);
    assert.is((bad.json.error as { field: string }).field, 'n');
    assert.is(await (await fetch(`${base}/app`)).text(), 'the app');
    const other = await fetch(`${base}/rewriter/elsewhere`);
    assert.is(other.status, 404);
    assert.is(await other.text(), 'app 404', 'paths the handler does not serve go to next()');
    assert.is((await fetch(`${base}/rewriter/healthz`)).status, 200);
  } finally {
    handler.close();
    await new Promise((resolve) => server.close(resolve));
  }
});

test('Fastify: a wildcard route handing the raw request over (reply.hijack), the parsed body reused', async () => {
  const handler = createRewriteHandler(rewriter, { retriever: bm25 });
  const app = Fastify();
  app.all('/rewriter/*', (request, reply) => {
    reply.hijack();
    request.raw.url = request.raw.url!.slice('/rewriter'.length);
    Object.assign(request.raw, { body: request.body });
    handler(request.raw, reply.raw);
  });
  app.get('/app', async () => 'the app');
  await app.listen({ port: 0, host: '127.0.0.1' });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  try {
    const q = trained.queries[1];
    const r = await postJson(`${base}/rewriter/v1/rewrite`, { queries: [q, trained.queries[2]], n: 2 });
    assert.is(r.status, 200, JSON.stringify(r.json));
    const expected = await rewriter.rewriteBatch([q, trained.queries[2]], { n: 2 });
    assert.equal((r.json.results as { rewrites: unknown }[]).map((x) => x.rewrites), expected);
    const bad = await postJson(`${base}/rewriter/v1/rewrite`, { query: 7 });
    assert.is(bad.status, 400);
    assert.is((bad.json.error as { field: string }).field, 'query');
    assert.is(await (await fetch(`${base}/app`)).text(), 'the app');
    const metrics = await (await fetch(`${base}/rewriter/metrics`)).text();
    assert.match(metrics, /minielm_http_requests_total\{route="rewrite",status="200"\} 1/);
  } finally {
    handler.close();
    await app.close();
  }
});

test.run();
