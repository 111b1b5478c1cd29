// Supervised fine-tuning on query-to-query pairs ("query <sep> rewrite <eos>", loss on the rewrite only):
// the first stage of MiniELM for both teacher and student, from scratch or from a pretrained folder
// (`init`, e.g. <pretrain out>/best). The loop itself (data order, eval and best checkpoint, exact
// resume, Ctrl-C, NaN/Inf) is lib/train/loop.ts, shared with pretraining and distillation.
import { encodePairs } from './batches.ts';
import { trainLoop, type TrainRunOptions, type TrainRunResult } from './loop.ts';
import { invalidArgument } from '../errors.ts';

export { evalLoss } from './loop.ts';

export interface RewritePair {
  query: string;
  rewrite: string;
}

export interface SftOptions extends TrainRunOptions {
  train: readonly RewritePair[];
  test: readonly RewritePair[];
}

export interface SftResult extends TrainRunResult {
  droppedPairs: number;
}

export async function trainSft(o: SftOptions): Promise<SftResult> {
  let droppedPairs = 0;
  const r = await trainLoop({
    ...o,
    label: o.label ?? 'sft',
    data: (model) => {
      const maxLen = model.config.n_ctx + 1;
      const train = encodePairs(o.tokenizer, o.train, maxLen);
      const test = encodePairs(o.tokenizer, o.test, maxLen);
      droppedPairs = train.dropped + test.dropped;
      if (train.examples.length < o.batchSize)
        throw invalidArgument(`only ${train.examples.length} training pairs fit in ${maxLen} tokens; need at least one batch of ${o.batchSize}`);
      return { train: train.examples, test: test.examples, info: { train_pairs: train.examples.length, test_pairs: test.examples.length, dropped_pairs: droppedPairs } };
    },
  });
  return { ...r, droppedPairs };
}
