// The event loop stays free while minielm works: Node's own event-loop delay monitor samples the loop while
// a GPT-2 124M-shaped model (random weights) trains, decodes, saves and loads a resumable checkpoint, while a
// BPE tokenizer trains and while BM25 indexes the 54,667 Home Depot titles. A service embedding minielm
// must keep answering its other requests meanwhile: the worst delay in every phase must stay under 50 ms.
// The heavy work runs in the engine's worker threads (training, decoding, tensor copies of checkpoint I/O),
// in a child process (the BPE trainer) or in time slices (BM25). The engine runs on all cores but one, as a
// service embedding it would: the event loop keeps a core, so a delay measures blocking, not a busy CPU.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { Model } from '../lib/model/model.ts';
import { setThreads } from '../lib/index.ts';
import { generate } from '../lib/model/generate.ts';
import { trainByteLevelBpe } from '../lib/tokenizer/train.ts';
import { Bm25Retriever, homeDepotAvailable, readHomeDepot, HOMEDEPOT_TRAIN_CSV } from '../lib/retrieval/index.ts';
import { testIf } from './helpers/skip.ts';

const LIMIT_MS = 50;
setThreads(Math.max(1, availableParallelism() - 1));
const GPT2_SMALL = { vocab_size: 50257, n_ctx: 1024, n_embd: 768, n_layer: 12, n_head: 12 };

/** Runs `work` under a fresh delay histogram; returns its worst delay in ms. */
async function worstDelay<T>(name: string, work: () => Promise<T>, log: string[]): Promise<{ ms: number; value: T }> {
  const h = monitorEventLoopDelay({ resolution: 5 });
  // A timer that keeps the loop ticking, so a long synchronous stretch shows up as one long delay.
  const tick = setInterval(() => undefined, 5);
  h.enable();
  const t0 = performance.now();
  try {
    const value = await work();
    // Let the last samples land.
    await new Promise((r) => setTimeout(r, 20));
    h.disable();
    const ms = h.max / 1e6;
    log.push(`${name}: ${(performance.now() - t0).toFixed(0)} ms, worst event-loop delay ${ms.toFixed(1)} ms (p99 ${(h.percentile(99) / 1e6).toFixed(1)} ms)`);
    return { ms, value };
  } finally {
    clearInterval(tick);
    h.disable();
  }
}

/**
 * worstDelay, and once more when the first run is over the limit: the machine is a VM sharing its cores, and
 * a stall of the host shows up as a delay too. Blocking code blocks every time; `again` drops the first
 * run's value (a model) before the second run.
 */
async function phaseDelay<T>(name: string, work: () => Promise<T>, log: string[], again?: (first: T) => Promise<void>): Promise<{ ms: number; value: T }> {
  const first = await worstDelay(name, work, log);
  if (first.ms <= LIMIT_MS) return first;
  await again?.(first.value);
  const second = await worstDelay(`${name}, measured again after ${first.ms.toFixed(1)} ms`, work, log);
  return second;
}

test('GPT-2 124M shape: create, train, decode, save and load a checkpoint with training state, the loop never blocked > 50 ms', async () => {
  const log: string[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'minielm-evloop-'));
  let model: Model | undefined;
  let loaded: Model | undefined;
  try {
    const worst: Record<string, number> = {};
    const created = await phaseDelay('create (random weights)', () => Model.create(GPT2_SMALL, { seed: 1 }), log, (first) => first.dispose());
    model = created.value;
    worst.create = created.ms;
    assert.ok(model.parameterCount() > 124e6, `${model.parameterCount()} parameters`);
    const T = 16;
    const tokens = Array.from({ length: T }, (_, i) => (i * 7919) % GPT2_SMALL.vocab_size);
    const targets = Array.from({ length: T }, (_, i) => (i * 104729 + 1) % GPT2_SMALL.vocab_size);
    const m = model;
    worst.train = (await phaseDelay('2 training steps (batch 1 x 16)', async () => {
      for (let i = 0; i < 2; i++) await m.trainStep({ batch: 1, seq: T, tokens, targets }, { lr: 1e-4 });
    }, log)).ms;
    worst.decode = (await phaseDelay('decode (4 beams, 8 tokens)', () => generate(m, [tokens.slice(0, 6)], { maxNewTokens: 8, numBeams: 4 }), log)).ms;
    const out = join(dir, 'ckpt');
    worst.save = (await phaseDelay('save with training state (~1.5 GB)', () => m.save(out, { trainingState: true }), log)).ms;
    const got = await phaseDelay('load with training state', () => Model.load(out, { trainingState: true }), log, (first) => first.dispose());
    loaded = got.value;
    worst.load = got.ms;
    // The round trip is exact (a spot check on the largest tensor).
    const a = m.readTensor('wte.weight'), b = loaded.readTensor('wte.weight');
    for (let i = 0; i < a.length; i += 9973) assert.is(b[i], a[i]);
    console.log(log.join('\n'));
    for (const [phase, ms] of Object.entries(worst)) assert.ok(ms <= LIMIT_MS, `${phase}: the event loop was blocked for ${ms.toFixed(1)} ms (limit ${LIMIT_MS})`);
  } finally {
    await model?.dispose();
    await loaded?.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});

test('training a BPE tokenizer keeps the loop free', async () => {
  const log: string[] = [];
  const words = ['drill', 'cordless', 'ceiling', 'fan', 'light', 'garden', 'hose', 'vanity', 'mower', 'paint', 'white', 'outdoor', 'solar', 'lites'];
  const texts = Array.from({ length: 20000 }, (_, i) => `${words[i % 14]} ${words[(i * 7) % 14]} ${words[(i * 11) % 14]} ${i % 97}`);
  const { ms, value } = await phaseDelay('BPE training (20,000 texts, 2,000 tokens)', () => trainByteLevelBpe(texts, { vocabSize: 2000 }), log);
  console.log(log.join('\n'));
  assert.ok(value.merges > 100);
  assert.ok(ms <= LIMIT_MS, `tokenizer training blocked the event loop for ${ms.toFixed(1)} ms`);
});

testIf(test, homeDepotAvailable(), 'indexing the 54,667 Home Depot titles in BM25 keeps the loop free (reading the table is reported)', `${HOMEDEPOT_TRAIN_CSV} is absent`, async () => {
  const log: string[] = [];
  const read = await worstDelay('read the Home Depot table', () => readHomeDepot(), log);
  const bm25 = new Bm25Retriever();
  const idx = await phaseDelay('BM25 index of every title', () => bm25.index(read.value.products), log);
  console.log(log.join('\n'));
  assert.is(bm25.size, 54667);
  assert.ok(idx.ms <= LIMIT_MS, `BM25 indexing blocked the event loop for ${idx.ms.toFixed(1)} ms`);
  // Reading the table is start-up work and is reported, not held to the limit (its CSV parser and the
  // judgement grouping run on the main thread).
});

test.run();
