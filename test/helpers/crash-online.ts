// The online trainer's tiny world for the crash-safety suite: the same catalog, tokenizer, environment and
// options in the SIGKILLed child and in the parent's uninterrupted reference run.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { generateSyntheticCatalog, buildQ2Q, syntheticIntentFilter } from '../../lib/data/index.ts';
import { Tokenizer } from '../../lib/tokenizer/index.ts';
import { Bm25Retriever } from '../../lib/retrieval/index.ts';
import { EmbeddedJudge, generateProfiles } from '../../lib/users/index.ts';
import { SyntheticTruthScorer } from '../../lib/rewards/index.ts';
import type { RewardEnvironment } from '../../lib/rewrite/environment.ts';
import type { OnlineOptions } from '../../lib/train/online.ts';
import type { Model } from '../../lib/model/model.ts';

/** Iterations of the run (the suite sets it from its trial count; children inherit the environment). */
export function onlineIterations(): number {
  return Number(process.env.MINIELM_CRASH_ONLINE_ITERATIONS ?? 60);
}

export interface OnlineWorld {
  tokenizer: Tokenizer;
  env: RewardEnvironment;
  trainQueries: string[];
  testQueries: string[];
}

export function onlineCatalog() {
  return generateSyntheticCatalog({ seed: 4, products: 300, queries: 300 });
}

export async function onlineWorld(root: string): Promise<OnlineWorld> {
  const catalog = onlineCatalog();
  const q2q = await buildQ2Q(catalog.judgements, { k: 2, seed: 4, filter: syntheticIntentFilter(catalog) });
  const tokenizer = await Tokenizer.load(join(root, 'fixture', 'tokenizer'));
  const retriever = new Bm25Retriever();
  await retriever.index([...catalog.products.values()]);
  const env: RewardEnvironment = { retriever, products: catalog.products, relevance: new SyntheticTruthScorer(catalog), judge: new EmbeddedJudge({ seed: 1 }), profiles: generateProfiles(20, 1) };
  return { tokenizer, env, trainQueries: [...new Set(q2q.train.map((p) => p.query))], testQueries: [...new Set(q2q.test.map((p) => p.query))].slice(0, 4) };
}

/** A digest of every parameter of `m`. */
export function paramDigest(m: Model): string {
  const h = createHash('sha256');
  for (const { name } of m.tensors()) {
    const t = m.readTensor(name);
    h.update(name).update(Buffer.from(t.buffer, t.byteOffset, t.byteLength));
  }
  return h.digest('hex');
}

/** Checkpoint every iteration; a selection score that jumps around, so <out>/best is rewritten now and then. */
export function onlineOptions(root: string, w: OnlineWorld, out: string, onSelect?: (policy: Model) => void): OnlineOptions {
  const init = join(root, 'fixture', 'sft', 'best');
  return {
    out, init, reference: init, tokenizer: w.tokenizer, env: w.env, trainQueries: w.trainQueries, testQueries: w.testQueries,
    iterations: onlineIterations(), queriesPerIteration: 4, evalEvery: 1, maxNewTokens: 8, beta: 0.1, optimizer: { lr: 1e-3 }, seed: 5, progress: false,
    selectBy: async (policy) => {
      onSelect?.(policy);
      return parseInt(paramDigest(policy).slice(0, 8), 16) / 2 ** 32;
    },
  };
}
