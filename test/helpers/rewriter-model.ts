// A small trained rewriter folder for the serving suites: the trainer suites' synthetic fixture, SFT for a
// few dozen steps (about a second), saved as a trainer saves it (config.json, model.safetensors, tokenizer.json).
import { join } from 'node:path';
import { trainSft } from '../../lib/train/sft.ts';
import { trainerFixture, type TrainerFixture } from './train-runs.ts';

export interface TrainedRewriter {
  /** The folder Rewriter.load reads. */
  dir: string;
  fixture: TrainerFixture;
  /** Distinct training queries, in order. */
  queries: string[];
}

export async function trainedRewriter(root: string): Promise<TrainedRewriter> {
  const fixture = await trainerFixture();
  const out = join(root, 'sft');
  await trainSft({
    out, train: fixture.train, test: fixture.test, tokenizer: fixture.tokenizer, config: fixture.config,
    steps: 60, batchSize: 16, optimizer: { lr: 1e-2, warmupSteps: 2 }, evalEvery: 60, seed: 3, progress: false,
  });
  return { dir: join(out, 'best'), fixture, queries: [...new Set(fixture.train.map((p) => p.query))] };
}
