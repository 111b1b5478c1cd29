// Properties over serving: Rewriter.load (hostile options, now and then a hostile folder), rewrite /
// rewriteBatch / expand with hostile queries, options and retrievers, and the HTTP endpoints
// (createRewriteHandler / startRewriteServer options; raw requests with random methods, paths, headers and
// bodies over a socket, and Express-style pre-parsed bodies of any JavaScript value). An HTTP request must be
// answered 2xx or 4xx, never 5xx or a dropped connection.
import fc from 'fast-check';
import { connect } from 'node:net';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cp, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { Rewriter } from '../../lib/serve/rewriter.ts';
import { createRewriteHandler, startRewriteServer, type RewriteHandler } from '../../lib/serve/http.ts';
import { Bm25Retriever } from '../../lib/retrieval/bm25.ts';
import type { Retriever } from '../../lib/retrieval/types.ts';
import { edgeNumber, edgeString, hostileValue, jsonMutations, mostly, mutateJson, options } from './arbitraries.ts';
import { CATALOG, rewriterFolder, scratch } from './fixtures.ts';
import { runProperty, type FuzzProperty } from './harness.ts';
import { fileBytes, jsonFileSpec, safetensorsSpec, writeSpec } from './model.ts';

const words = fc.oneof(fc.constant(CATALOG.map((p) => p.title)), fc.array(fc.oneof(edgeString, fc.constantFrom('red', 'drill lamp', '')), { maxLength: 4 }));
const hygiene = fc.oneof(fc.constant(false), options({ noRepeatNgramSize: fc.integer({ min: 0, max: 4 }), repetitionPenalty: fc.double({ min: 0.5, max: 2, noNaN: true }), minNewTokens: fc.integer({ min: 0, max: 2 }) }));
const loadOptions = fc.oneof(fc.constant(undefined), options({
  weights: fc.constantFrom('fp32', 'bf16'),
  maxBatch: fc.integer({ min: 1, max: 64 }),
  maxWaitMs: fc.double({ min: 0, max: 3, noNaN: true }),
  cacheSize: fc.integer({ min: 0, max: 100 }),
  queueLimit: fc.integer({ min: 1, max: 100 }),
  hygiene,
  words,
  maxNewTokens: fc.integer({ min: 1, max: 30 }),
}));

async function validRewrite(r: Rewriter): Promise<void> {
  const out = await r.rewrite('red drill', { n: 2 });
  if (!Array.isArray(out)) throw new Error('a valid rewrite after the property did not return a list');
}

export const fuzzRewriterLoad: FuzzProperty = async (runs, o) => {
  const good = await rewriterFolder();
  const bad = join(await scratch(), 'rewriter-bad');
  await cp(good, bad, { recursive: true });
  const files = {
    config: await readFile(join(good, 'config.json')),
    weights: await readFile(join(good, 'model.safetensors')),
    tokenizer: await readFile(join(good, 'tokenizer.json')),
  };
  const folder = fc.oneof(
    { arbitrary: fc.constant({ kind: 'good' as const }), weight: 12 },
    { arbitrary: fc.record({ kind: fc.constant('bad' as const), config: jsonFileSpec, weights: safetensorsSpec, tokenizer: jsonFileSpec }), weight: 3 },
    { arbitrary: hostileValue.map((dir) => ({ kind: 'hostile' as const, dir })), weight: 1 },
  );
  return runProperty({
    entry: 'Rewriter.load',
    arbitrary: fc.tuple(folder, loadOptions),
    call: async ([f, opts]) => {
      if (f.kind === 'good') return Rewriter.load(good, opts as never);
      if (f.kind === 'hostile') return Rewriter.load(f.dir as string, opts as never);
      const config = fileBytes(files.config, f.config, true);
      await writeSpec(join(bad, 'config.json'), config);
      await writeSpec(join(bad, 'model.safetensors'), fileBytes(files.weights, f.weights, false));
      await writeSpec(join(bad, 'tokenizer.json'), fileBytes(files.tokenizer, f.tokenizer, true));
      return Rewriter.load(bad, opts as never);
    },
    check: (r) => (r instanceof Rewriter ? undefined : 'Rewriter.load resolved to something else than a Rewriter'),
    cleanup: (r) => (r as Rewriter).close(),
    sanity: async () => {
      const r = await Rewriter.load(good);
      await validRewrite(r);
      await r.close();
    },
  }, { runs, ...o });
};

const query = fc.oneof(
  { arbitrary: fc.constantFrom('red drill', 'lamp', 'cordless drill driver', 'RED  shoe ', 'drill'), weight: 6 },
  { arbitrary: fc.string({ maxLength: 30 }), weight: 3 },
  { arbitrary: edgeString, weight: 2 },
  { arbitrary: hostileValue, weight: 1 },
);
const beam = { strategy: fc.constant('beam'), n: fc.integer({ min: 1, max: 8 }), includeQuery: fc.boolean() };
const sample = { strategy: fc.constant('sample'), n: fc.integer({ min: 1, max: 8 }), temperature: fc.double({ min: 0.1, max: 5, noNaN: true }), topP: fc.double({ min: 0.05, max: 1, noNaN: true }), seed: fc.nat(), includeQuery: fc.boolean() };
const signals = fc.constantFrom('aborted', 'soon', 'live').map((s) => (s === 'aborted' ? AbortSignal.abort() : s === 'soon' ? AbortSignal.timeout(1) : new AbortController().signal));
const rewriteOptions = fc.oneof(fc.constant(undefined), options({ ...beam, signal: signals }), options({ ...sample, signal: signals }), options({ ...beam, n: fc.constantFrom(64, 1024, 1025) }));

export const fuzzRewrite: FuzzProperty = async (runs, o) => {
  const r = await Rewriter.load(await rewriterFolder(), { cacheSize: 64, maxNewTokens: 8, queueLimit: 64 });
  try {
    return await runProperty({
      entry: 'rewriter.rewrite/batch',
      arbitrary: fc.oneof(
        { arbitrary: fc.tuple(fc.constant('rewrite' as const), query, rewriteOptions), weight: 6 },
        { arbitrary: fc.tuple(fc.constant('rewriteBatch' as const), mostly(fc.array(query, { maxLength: 5 }), hostileValue, 8), rewriteOptions), weight: 4 },
        { arbitrary: fc.tuple(fc.constant('overload' as const), fc.integer({ min: 65, max: 200 }), fc.constant(undefined)), weight: 1 },
      ),
      call: ([method, q, opts]) => {
        if (method === 'rewrite') return r.rewrite(q as string, opts as never);
        if (method === 'rewriteBatch') return r.rewriteBatch(q as string[], opts as never);
        return r.rewriteBatch(Array.from({ length: q as number }, (_, i) => `query ${i}`), { n: 1 });
      },
      check: (out) => (Array.isArray(out) ? undefined : 'rewrite resolved to something else than an array'),
      sanity: () => validRewrite(r),
    }, { runs, ...o });
  } finally {
    await r.close();
  }
};

/** Retrievers that misbehave: wrong shapes, wrong counts, ids of every type (never throwing: that is their own error). */
const retriever = (good: Retriever): fc.Arbitrary<unknown> => fc.oneof(
  { arbitrary: fc.constant(good as unknown), weight: 8 },
  { arbitrary: fc.oneof(hostileValue, fc.constant({ search: 'not a function' })), weight: 1 },
  { arbitrary: hostileValue.map((answer) => ({ search: async () => answer })), weight: 1 },
  { arbitrary: fc.array(fc.array(fc.oneof(fc.constantFrom('p1', 'p2', 'p9'), hostileValue), { maxLength: 4 }), { maxLength: 12 }).map((lists) => ({ search: async (texts: readonly string[]) => lists.slice(0, texts.length).concat(Array.from({ length: Math.max(0, texts.length - lists.length) }, () => [])) })), weight: 2 },
);

export const fuzzExpand: FuzzProperty = async (runs, o) => {
  const r = await Rewriter.load(await rewriterFolder(), { cacheSize: 64, maxNewTokens: 8 });
  const bm25 = new Bm25Retriever();
  await bm25.index(CATALOG);
  const expandOptions = fc.oneof(
    fc.constant(undefined),
    options({ ...beam, includeQuery: fc.constant(undefined), k: fc.integer({ min: 1, max: 20 }), merge: fc.constantFrom('rrf', 'interleave'), limit: fc.integer({ min: 1, max: 20 }), signal: signals }),
    options({ ...sample, includeQuery: fc.constant(undefined), k: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.constant(1000)), merge: fc.constantFrom('rrf', 'interleave'), limit: fc.oneof(fc.integer({ min: 1, max: 20 }), edgeNumber) }),
  );
  try {
    return await runProperty({
      entry: 'rewriter.expand',
      arbitrary: fc.tuple(query, retriever(bm25), expandOptions),
      call: ([q, ret, opts]) => r.expand(q as string, ret as Retriever, opts as never),
      check: (out) => (out && typeof out === 'object' && Array.isArray((out as { products?: unknown }).products) ? undefined : 'expand resolved without a product list'),
      sanity: async () => {
        const e = await r.expand('red drill', bm25, { n: 2 });
        if (!e.products.some((p) => p.id === 'p1')) throw new Error('a valid expand after the property lost the query\'s own hit p1');
      },
    }, { runs, ...o });
  } finally {
    await r.close();
  }
};

// ---- HTTP ----

const handlerOptions = fc.oneof(fc.constant(undefined), options({
  maxBodyBytes: fc.integer({ min: 1, max: 64 * 1024 }),
  maxQueries: fc.integer({ min: 1, max: 64 }),
  maxN: fc.integer({ min: 1, max: 32 }),
  maxK: fc.integer({ min: 1, max: 100 }),
  maxQueryLength: fc.integer({ min: 1, max: 512 }),
  timeoutMs: fc.integer({ min: 1, max: 10_000 }),
  playground: fc.boolean(),
  products: fc.constant(CATALOG),
}));

/** createRewriteHandler and startRewriteServer with hostile options (servers that start are shut down at once). */
export const fuzzHttpOptions: FuzzProperty = async (runs, o) => {
  const r = await Rewriter.load(await rewriterFolder(), { maxNewTokens: 8 });
  const serverOptions = fc.oneof(
    handlerOptions,
    options({ host: fc.constantFrom('127.0.0.1', '::1', 'localhost', '0.0.0.0'), port: fc.constantFrom(0, 0, 1, 65536, -1, 80.5), graceMs: fc.oneof(fc.nat({ max: 100 }), edgeNumber), timeoutMs: fc.integer({ min: 1, max: 10_000 }) }),
  );
  try {
    return await runProperty({
      entry: 'http.options',
      arbitrary: fc.tuple(fc.constantFrom('handler' as const, 'server' as const), mostly(fc.constant(r as unknown), hostileValue, 20), serverOptions),
      call: async ([kind, rewriter, opts]) => {
        // Each handler registers its metrics in a registry of its own (the default one would collect process metrics every time).
        const withRegistry = opts && typeof opts === 'object' && !Array.isArray(opts) && !('registry' in opts) ? { ...opts, registry: new Registry() } : opts;
        if (kind === 'handler') return createRewriteHandler(rewriter as Rewriter, withRegistry as never);
        return startRewriteServer(rewriter as Rewriter, withRegistry as never);
      },
      cleanup: async (out) => {
        if (out && typeof out === 'object' && 'shutdown' in out) await (out as { shutdown(): Promise<void> }).shutdown();
        else if (typeof out === 'function') (out as RewriteHandler).close();
      },
      sanity: async () => {
        const s = await startRewriteServer(r, { port: 0, registry: new Registry() });
        const res = await fetch(new URL('healthz', s.url));
        await s.shutdown();
        if (res.status !== 200) throw new Error(`GET /healthz answered ${res.status}`);
      },
    }, { runs, ...o });
  } finally {
    await r.close();
  }
};

/**
 * Sends raw bytes and returns the status code of the answer (0 when the connection closed without one). A
 * complete request is sent and answered on an open connection; an incomplete one (cut short, garbage) is
 * followed by a half-close, which node:http takes as the client leaving, so no answer is fine there.
 */
function rawRequest(port: number, bytes: Buffer, complete: boolean, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let got = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(-1);
    }, timeoutMs);
    // The final status: interim 1xx answers (100 Continue) come first and are skipped.
    const final = (): number | undefined => {
      for (const m of got.matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3})/g)) if (!m[1].startsWith('1')) return Number(m[1]);
      return undefined;
    };
    socket.on('data', (chunk) => {
      got += chunk.toString('latin1');
      const status = final();
      if (status !== undefined) {
        clearTimeout(timer);
        socket.destroy();
        resolve(status);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(final() ?? 0);
    });
    if (complete) socket.write(bytes);
    else socket.end(bytes);
  });
}

const token = fc.oneof(fc.constantFrom('GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'CONNECT', 'get', 'BREW'), fc.stringMatching(/^[A-Z]{1,8}$/));
const path = fc.oneof(
  { arbitrary: fc.constantFrom('/', '/healthz', '/metrics', '/v1/rewrite', '/v1/expand', '/v1/rewrite?x=1', '//v1/rewrite', '/v1/rewrite/', '/V1/REWRITE', '/favicon.ico', '*', '/%00', '/..%2f..%2fetc/passwd', `/${'a'.repeat(3000)}`), weight: 6 },
  { arbitrary: fc.webPath(), weight: 2 },
  { arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 20 }).map((s) => `/${s}`), weight: 1 },
);
const jsonBody = fc.oneof(
  { arbitrary: fc.record({ query: fc.oneof(fc.constantFrom('red drill', 'lamp', ''), fc.string({ maxLength: 20 })), n: fc.integer({ min: 1, max: 4 }) }, { requiredKeys: ['query'] }).map((b) => JSON.stringify(b)), weight: 4 },
  { arbitrary: fc.record({ queries: fc.array(fc.constantFrom('red drill', 'lamp'), { maxLength: 3 }), strategy: fc.constantFrom('beam', 'sample') }).map((b) => JSON.stringify(b)), weight: 2 },
  { arbitrary: fc.tuple(jsonMutations, fc.constantFrom({ query: 'red drill', n: 2 }, { queries: ['lamp'], n: 1 }, { query: 'drill', k: 3, merge: 'rrf' })).map(([m, doc]) => JSON.stringify(mutateJson(doc, m)) ?? ''), weight: 4 },
  { arbitrary: fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 })), weight: 2 },
);
const header = fc.oneof(
  fc.constantFrom('content-type: application/json', 'content-type: text/plain', 'content-type: application/json; charset=latin1', 'transfer-encoding: chunked', 'content-length: 5', 'content-length: 99999999', 'content-length: -1', 'content-length: abc', 'expect: 100-continue', 'connection: keep-alive', 'host:', 'x-a: \u00ff', 'upgrade: websocket', 'connection: upgrade', 'upgrade: h2c'),
  fc.tuple(fc.stringMatching(/^[a-zA-Z-]{1,12}$/), fc.string({ unit: 'binary-ascii', maxLength: 20 })).map(([k, v]) => `${k}: ${v.replace(/[\r\n]/g, '')}`),
);

const request = fc.oneof(
  { arbitrary: fc.record({ method: token, path, headers: fc.array(header, { maxLength: 3 }), body: jsonBody, length: fc.constantFrom('right', 'right', 'right', 'none', 'short', 'long'), version: fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/9') }).map(({ method, path, headers, body, length, version }) => {
    const bytes = Buffer.from(body);
    const n = length === 'right' ? bytes.length : length === 'short' ? Math.max(0, bytes.length - 3) : bytes.length + 10;
    const head = [`${method} ${path} ${version}`, 'host: localhost', 'connection: close', ...headers, ...(length === 'none' ? [] : [`content-length: ${n}`])];
    // Complete: the body is all there and nothing asks the server to wait for more.
    const complete = length === 'right' && !headers.some((h) => /^(content-length|transfer-encoding|expect|upgrade|connection):/i.test(h));
    return { bytes: Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'latin1'), bytes]), complete };
  }), weight: 10 },
  // Well-formed POSTs to the real routes, so the rewriter and the retriever behind them run too.
  { arbitrary: fc.tuple(fc.constantFrom('/v1/rewrite', '/v1/expand'), jsonBody).map(([route, body]) => {
    const bytes = Buffer.from(body);
    const head = `POST ${route} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${bytes.length}\r\n\r\n`;
    return { bytes: Buffer.concat([Buffer.from(head, 'latin1'), bytes]), complete: true };
  }), weight: 6 },
  { arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => ({ bytes: Buffer.from(b), complete: false })), weight: 1 },
  { arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 200 }).map((s) => ({ bytes: Buffer.from(`POST /v1/rewrite HTTP/1.1\r\n${s}`, 'latin1'), complete: false })), weight: 1 },
);

/** A 2xx, or a 4xx the client caused: anything else (5xx, no answer) is a failure. */
function acceptable(status: number): boolean {
  return (status >= 200 && status < 300) || (status >= 400 && status < 500);
}

export const fuzzHttp: FuzzProperty = async (runs, o) => {
  const r = await Rewriter.load(await rewriterFolder(), { maxNewTokens: 6, cacheSize: 256 });
  const bm25 = new Bm25Retriever();
  await bm25.index(CATALOG);
  const s = await startRewriteServer(r, { port: 0, retriever: bm25, products: CATALOG, timeoutMs: 2_000, registry: new Registry() });
  const port = new URL(s.url).port;
  // Express and Fastify hand the handler a body they parsed already: any value, here set from a side channel.
  const bodies = new Map<string, unknown>();
  const handler = createRewriteHandler(r, { retriever: bm25, registry: new Registry(), timeoutMs: 2_000 });
  const express: Server = createServer((req, res) => {
    const id = req.headers['x-fuzz-body'];
    if (typeof id === 'string' && bodies.has(id)) (req as typeof req & { body?: unknown }).body = bodies.get(id);
    handler(req, res, () => res.writeHead(404).end());
  });
  await new Promise<void>((resolve) => express.listen(0, '127.0.0.1', resolve));
  const expressPort = (express.address() as AddressInfo).port;
  let n = 0;
  const preParsed = fc.record({ route: fc.constantFrom('/v1/rewrite', '/v1/expand', '/nowhere'), body: fc.oneof(hostileValue, options({ query: fc.constantFrom('red drill', 'lamp'), queries: fc.constant(['lamp']), n: fc.integer({ min: 1, max: 4 }), k: fc.integer({ min: 1, max: 5 }) })) });
  try {
    return await runProperty({
      entry: 'http',
      arbitrary: fc.oneof({ arbitrary: request.map((r) => ({ kind: 'raw' as const, ...r })), weight: 4 }, { arbitrary: preParsed.map((p) => ({ kind: 'parsed' as const, ...p })), weight: 1 }),
      call: async (input) => {
        if (input.kind === 'raw') {
          const status = await rawRequest(Number(port), input.bytes, input.complete, 10_000);
          if (status === 0 && !input.complete) return 'closed';
          if (!acceptable(status) && process.env.FUZZ_HTTP_DEBUG) process.stderr.write(`HTTP ${status}: ${JSON.stringify(input.bytes.toString('latin1')).slice(0, 400)}\n`);
          if (!acceptable(status)) throw new Error(`answered ${status === 0 ? 'nothing (connection closed)' : status === -1 ? 'nothing within 10 s' : status}`);
          return status;
        }
        const id = String(n++);
        bodies.set(id, input.body);
        try {
          const res = await fetch(`http://127.0.0.1:${expressPort}${input.route}`, { method: 'POST', headers: { 'x-fuzz-body': id, 'content-type': 'application/json' }, body: '{}' });
          await res.arrayBuffer();
          if (!acceptable(res.status)) throw new Error(`answered ${res.status} to a pre-parsed body`);
          return res.status;
        } finally {
          bodies.delete(id);
        }
      },
      label: (status) => String(status),
      sanity: async () => {
        const res = await fetch(new URL('v1/rewrite', s.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: 'red drill', n: 2 }) });
        const body = (await res.json()) as { rewrites?: unknown };
        if (res.status !== 200 || !Array.isArray(body.rewrites)) throw new Error(`a valid POST /v1/rewrite answered ${res.status}`);
        const health = await fetch(new URL('healthz', s.url));
        if (health.status !== 200) throw new Error(`GET /healthz answered ${health.status}`);
      },
      timeoutMs: 15_000,
    }, { runs, ...o });
  } finally {
    handler.close();
    await new Promise<void>((resolve) => express.close(() => resolve()));
    express.closeAllConnections();
    await s.shutdown();
    await r.close();
  }
};
