// What the trainer suites (SFT, pretraining) share: their small synthetic fixture, interrupting a run after
// a few logged steps, bit-identical weights after a resume, the steps a log recorded, a model that overflows.
import * as assert from 'uvu/assert';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Model, type ModelConfig } from '../../lib/model/model.ts';
import { generateSyntheticCatalog, buildQ2Q, syntheticIntentFilter, type SyntheticCatalog } from '../../lib/data/index.ts';
import { trainTokenizer, type Tokenizer } from '../../lib/tokenizer/index.ts';
import type { RewritePair } from '../../lib/train/sft.ts';

/** Aborts `controller` once the run in `out` has logged `steps` training steps (polls its log.jsonl). */
export async function abortAfterLoggedSteps(out: string, controller: AbortController, steps: number): Promise<void> {
  let seen = 0;
  while (seen < steps) {
    await new Promise((r) => setTimeout(r, 5));
    try {
      seen = (await readFile(join(out, 'log.jsonl'), 'utf8')).split('\n').filter((l) => l.includes('"loss"')).length;
    } catch {
      seen = 0;
    }
  }
  controller.abort();
}

export function assertSameWeights(a: Model, b: Model): void {
  for (const { name } of a.tensors()) {
    const x = a.readTensor(name), y = b.readTensor(name);
    assert.ok(x.every((v, i) => Object.is(v, y[i])), `tensor ${name} differs after resume`);
  }
}

/** The steps of `out`'s log that trained (have a loss), in order. */
export async function trainedSteps(out: string): Promise<(number | undefined)[]> {
  const log = (await readFile(join(out, 'log.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { step?: number; loss?: number });
  return log.filter((l) => l.loss !== undefined).map((l) => l.step);
}

/** Saves into `dir` a model whose logits overflow on the first forward pass. */
export async function saveDivergingModel(config: ModelConfig, dir: string): Promise<void> {
  const m = await Model.create(config, { seed: 1 });
  // LayerNorm would cancel any scale on the embeddings; a huge final gain makes the logits overflow.
  m.writeTensor('ln_f.weight', m.readTensor('ln_f.weight').fill(3e38));
  await m.save(dir);
}

export interface TrainerFixture {
  catalog: SyntheticCatalog;
  train: RewritePair[];
  /** The first 64 test pairs. */
  test: RewritePair[];
  /** Every test pair (the queries a pretraining corpus must leave out). */
  allTest: RewritePair[];
  tokenizer: Tokenizer;
  /** The tiny architecture the trainer suites use, with the tokenizer's vocabulary. */
  config: ModelConfig;
}

/** A 300-product synthetic catalog, its intent-filtered Q2Q pairs and a 400-token BPE: small enough for seconds-long runs. */
export async function trainerFixture(): Promise<TrainerFixture> {
  const catalog = generateSyntheticCatalog({ seed: 2, products: 300, queries: 300 });
  const q2q = await buildQ2Q(catalog.judgements, { k: 2, seed: 2, filter: syntheticIntentFilter(catalog) });
  const tokenizer = await trainTokenizer([...q2q.train.map((p) => p.query), ...[...catalog.products.values()].map((p) => p.title)], { vocabSize: 400 });
  return { catalog, train: q2q.train, test: q2q.test.slice(0, 64), allTest: q2q.test, tokenizer, config: { vocab_size: tokenizer.vocabSize, n_ctx: 32, n_layer: 1, n_head: 2, n_embd: 32 } };
}
