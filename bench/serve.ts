// Serving throughput and latency: the `student` preset (random weights: speed does not depend on the values)
// behind a Rewriter, 10 beam rewrites per request, cache off, 1 / 16 / 64 concurrent clients, in-process
// (clients awaiting rewrite()) and over HTTP (autocannon against startRewriteServer in this process), each
// with micro-batching on (the default maxBatch) and off (maxBatch 1: one native decode per request) in the
// same run, with fp32 weights and again with bf16 weights (AMX tiles where the CPU has them). Figures:
// requests/s, p50 / p99 latency, mean requests per native decode, peak RSS.
import autocannon from 'autocannon';
import type { BenchContext } from './run.ts';
import { native } from '../lib/native.ts';
import { Model, PRESETS } from '../lib/model/model.ts';
import { trainTokenizer, type Tokenizer } from '../lib/tokenizer/index.ts';
import { generateSyntheticCatalog } from '../lib/data/index.ts';
import { homeDepotAvailable, readHomeDepot, HOMEDEPOT_TRAIN_CSV } from '../lib/retrieval/index.ts';
import { Rewriter } from '../lib/serve/rewriter.ts';
import { startRewriteServer } from '../lib/serve/http.ts';

export const prefixes = ['serve.'];

const CLIENTS = [1, 16, 64];
const N = 10;
const PHASE_S = 4;

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** Peak resident set size while `job` runs, sampled every 20 ms. */
async function withPeakRss<T>(job: () => Promise<T>): Promise<{ result: T; peakMb: number }> {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
  try {
    const result = await job();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { result, peakMb: peak / 2 ** 20 };
  } finally {
    clearInterval(timer);
  }
}

/** Realistic query and title text: Home Depot when present, else the synthetic catalog. */
async function corpus(ctx: BenchContext): Promise<{ queries: string[]; texts: string[] }> {
  if (homeDepotAvailable()) {
    const hd = await readHomeDepot();
    const queries = [...new Set(hd.queries.map((q) => q.query))];
    ctx.note(`text: Home Depot (${hd.products.length} titles, ${queries.length} queries)`);
    return { queries, texts: [...hd.products.map((p) => p.title), ...queries] };
  }
  const c = generateSyntheticCatalog({ seed: 1, products: 5000, queries: 2000 });
  const queries = [...new Set(c.judgements.map((j) => j.query))];
  ctx.note(`${HOMEDEPOT_TRAIN_CSV} is absent: SYNTHETIC catalog text (${c.products.size} titles, ${queries.length} queries)`);
  return { queries, texts: [...[...c.products.values()].map((p) => p.title), ...queries] };
}

interface Phase {
  rps: number;
  p50: number;
  p99: number;
  meanBatch: number;
  peakMb: number;
}

/** `clients` loops, each awaiting one rewrite after another for PHASE_S seconds. */
async function inProcess(rewriter: Rewriter, queries: readonly string[], clients: number): Promise<Phase> {
  const before = rewriter.stats();
  const latencies: number[] = [];
  const started = performance.now();
  const stop = started + PHASE_S * 1000;
  let completed = 0;
  const { peakMb } = await withPeakRss(() => Promise.all(Array.from({ length: clients }, async (_, c) => {
    for (let i = c * 7919; performance.now() < stop; i++) {
      const t0 = performance.now();
      await rewriter.rewrite(queries[i % queries.length], { n: N });
      const t1 = performance.now();
      latencies.push(t1 - t0);
      // Throughput counts the requests finished inside the window; the ones still running end after it.
      if (t1 <= stop) completed += 1;
    }
  })));
  const after = rewriter.stats();
  latencies.sort((a, b) => a - b);
  return {
    rps: completed / PHASE_S, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99),
    meanBatch: (after.batchedRequests - before.batchedRequests) / Math.max(1, after.batches - before.batches), peakMb,
  };
}

/** autocannon with `clients` connections against POST /v1/rewrite for PHASE_S seconds. */
async function overHttp(rewriter: Rewriter, queries: readonly string[], clients: number): Promise<Phase & { errors: number }> {
  const server = await startRewriteServer(rewriter, { port: 0, maxN: N, timeoutMs: 60_000 });
  try {
    const before = rewriter.stats();
    const requests = queries.slice(0, 256).map((q) => ({ method: 'POST' as const, path: '/v1/rewrite', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: q, n: N }) }));
    const { result, peakMb } = await withPeakRss(() => autocannon({ url: server.url, connections: clients, duration: PHASE_S, requests, timeout: 60 }));
    const after = rewriter.stats();
    return {
      rps: result.requests.total / PHASE_S, p50: result.latency.p50, p99: result.latency.p99,
      meanBatch: (after.batchedRequests - before.batchedRequests) / Math.max(1, after.batches - before.batches), peakMb,
      errors: result.errors + result.timeouts + result.non2xx,
    };
  } finally {
    await server.shutdown();
  }
}

/** Malformed bodies for the soak: bad JSON, wrong types, a huge n, unknown fields, invalid UTF-8, too large. */
const MALFORMED: (string | Buffer)[] = [
  '{"query":', '[1,2]', '{"query": 5}', '{"query":"x","n":100000}', '{"query":"x","bogus":1}', '',
  '{"query":"x","strategy":"sample","temperature":"hot"}', '['.repeat(1500), 'null',
  Buffer.from([0x7b, 0x22, 0x71, 0x75, 0xc3, 0x28, 0x22, 0x7d]), `{"query":"${'x'.repeat(20_000)}"}`,
];

/**
 * 20,000 valid requests from 64 autocannon connections, RSS after a 2,000-request warm-up against after
 * the 20,000 (V8 collected first when --expose-gc is on); then 11,000 requests of which 1 in 11 is valid
 * and the rest malformed, counting the answers by status class.
 */
async function soak(rewriter: Rewriter, queries: readonly string[], ctx: BenchContext): Promise<Record<string, number>> {
  const server = await startRewriteServer(rewriter, { port: 0, maxN: N, timeoutMs: 60_000 });
  const gc = (globalThis as { gc?: () => void }).gc;
  try {
    const valid = queries.slice(0, 256).map((q) => ({ method: 'POST' as const, path: '/v1/rewrite', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: q, n: N }) }));
    await autocannon({ url: server.url, connections: 64, amount: 2000, requests: valid, timeout: 60 });
    gc?.();
    const before = process.memoryUsage.rss();
    const t0 = performance.now();
    const main = await autocannon({ url: server.url, connections: 64, amount: 20_000, requests: valid, timeout: 60 });
    const seconds = (performance.now() - t0) / 1000;
    gc?.();
    const growthMb = (process.memoryUsage.rss() - before) / 2 ** 20;
    // 10 malformed, then 1 valid, over and over (each connection walks the list from its start): 11,000
    // requests, about 10,000 of them malformed; every valid one must get a 2xx and every malformed one a 4xx.
    const mixed = Array.from({ length: 11 * MALFORMED.length }, (_, i) => (i % 11 === 10
      ? valid[i % valid.length]
      : { method: 'POST' as const, path: '/v1/rewrite', headers: { 'content-type': 'application/json' }, body: MALFORMED[i % MALFORMED.length] as string }));
    const bad = await autocannon({ url: server.url, connections: 64, amount: 11_000, requests: mixed, timeout: 60 });
    const out = {
      'serve.soak.requests': main.requests.total, 'serve.soak.rps': main.requests.total / seconds, 'serve.soak.rss_growth_mb': growthMb,
      'serve.soak.errors': main.errors + main.timeouts + main.non2xx,
      'serve.soak.malformed_2xx': bad['2xx'], 'serve.soak.malformed_4xx': bad['4xx'], 'serve.soak.malformed_5xx': bad['5xx'],
      'serve.soak.malformed_errors': bad.errors + bad.timeouts,
    };
    ctx.note(`soak (bf16 weights, cache off): ${main.requests.total} requests at 64 connections in ${seconds.toFixed(0)} s (${out['serve.soak.rps'].toFixed(1)} req/s, ` +
      `${out['serve.soak.errors']} errors), RSS ${growthMb >= 0 ? '+' : ''}${growthMb.toFixed(1)} MB after the 2,000-request warm-up${gc ? ' (after gc)' : ' (no --expose-gc: V8 garbage included)'}; ` +
      `then 11,000 requests, 1 in 11 valid on each connection: ${bad['2xx']} 2xx, ${bad['4xx']} 4xx, ${bad['5xx']} 5xx, ${bad.errors + bad.timeouts} socket errors / timeouts`);
    return out;
  } finally {
    await server.shutdown();
  }
}

export async function run(ctx: BenchContext): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const { queries, texts } = await corpus(ctx);
  const t0 = performance.now();
  const tokenizer: Tokenizer = await trainTokenizer(texts, { vocabSize: PRESETS.student.vocab_size });
  ctx.note(`tokenizer: ${tokenizer.vocabSize} tokens trained in ${((performance.now() - t0) / 1000).toFixed(1)} s; model: student preset ${JSON.stringify(PRESETS.student)}, random weights`);
  // The preset's own vocabulary: a tokenizer with fewer tokens leaves ids the Rewriter skips when decoding.
  const model = await Model.create(PRESETS.student, { seed: 1 });
  // fp32 weights and bf16 weights (on AMX tiles where the CPU has them: native.decodeBf16Isa(); the default
  // weights: 'auto' picks bf16 there).
  const rewriters = {
    fp32: {
      batched: await Rewriter.fromModel(model, tokenizer, { cacheSize: 0, weights: 'fp32' }),
      single: await Rewriter.fromModel(model, tokenizer, { cacheSize: 0, maxBatch: 1, weights: 'fp32' }),
    },
    bf16: {
      batched: await Rewriter.fromModel(model, tokenizer, { cacheSize: 0, weights: 'bf16' }),
      single: await Rewriter.fromModel(model, tokenizer, { cacheSize: 0, maxBatch: 1, weights: 'bf16' }),
    },
  };
  const { batched } = rewriters.fp32;
  ctx.note(`${native.numThreads()} native threads; ${N} beam rewrites per request, ${batched.settings.maxNewTokens} new tokens at most, cache off; ` +
    `micro-batched: maxBatch ${batched.settings.maxBatch} sequences, maxWaitMs ${batched.settings.maxWaitMs}; single: maxBatch 1; ${PHASE_S} s per phase; ` +
    `weights fp32 (names serve.*) and bf16 on ${native.decodeBf16Isa()} kernels (names serve.*.bf16.*)`);
  for (const r of Object.values(rewriters)) for (let i = 0; i < 3; i++) await r.batched.rewrite(queries[i], { n: N });
  try {
    for (const weights of ['fp32', 'bf16'] as const) for (const where of ['inproc', 'http'] as const) {
      for (const clients of CLIENTS) {
        const rates: Record<string, number> = {};
        const prefix = `serve.${where}.c${clients}${weights === 'bf16' ? '.bf16' : ''}`;
        for (const [mode, rewriter] of [['batched', rewriters[weights].batched], ['single', rewriters[weights].single]] as const) {
          const name = `${prefix}.${mode}`;
          if (!ctx.wants(name)) continue;
          const p = where === 'inproc' ? await inProcess(rewriter, queries, clients) : await overHttp(rewriter, queries, clients);
          out[`${name}.rps`] = p.rps;
          out[`${name}.p50_ms`] = p.p50;
          out[`${name}.p99_ms`] = p.p99;
          out[`${name}.mean_batch`] = p.meanBatch;
          out[`${name}.peak_rss_mb`] = p.peakMb;
          rates[mode] = p.rps;
          const errors = 'errors' in p ? `, ${String(p.errors)} errors` : '';
          ctx.note(`${weights} ${where.padEnd(6)} ${String(clients).padStart(2)} clients ${mode.padEnd(7)}: ${p.rps.toFixed(1)} req/s, p50 ${p.p50.toFixed(1)} ms, p99 ${p.p99.toFixed(1)} ms, ` +
            `${p.meanBatch.toFixed(2)} requests per decode, peak RSS ${p.peakMb.toFixed(0)} MB${errors}`);
        }
        if (rates.batched && rates.single) {
          out[`${prefix}.speedup`] = rates.batched / rates.single;
          ctx.note(`${weights} ${where} ${clients} clients: micro-batched / one decode per request = ${(rates.batched / rates.single).toFixed(2)}x`);
        }
      }
    }
    if (ctx.wants('serve.soak.')) Object.assign(out, await soak(rewriters.bf16.batched, queries, ctx));
  } finally {
    for (const r of Object.values(rewriters)) {
      await r.batched.close();
      await r.single.close();
    }
    await model.dispose();
  }
  return out;
}
