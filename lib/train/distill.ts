// Knowledge distillation, MiniELM's second offline stage: the student learns the teacher's token
// distributions on the Q2Q pairs through token-level reverse KL, KL(p_S || p_T), which makes the student
// mode-seeking (it concentrates on the teacher's likely rewrites instead of spreading over all of them).
// Optional CE mix with the ground-truth rewrite. Reuses the SFT loop: data order, eval, checkpoints,
// resume, Ctrl-C and NaN handling are identical.
import { Model } from '../model/model.ts';
import { distillStep, type DistillOptions } from '../model/align.ts';
import { trainSft, type SftOptions, type SftResult } from './sft.ts';
import { invalidArgument } from '../errors.ts';

export interface DistillTrainOptions extends Omit<SftOptions, 'stepFn'> {
  /** The trained teacher (frozen). */
  teacher: Model;
  distill?: DistillOptions;
}

export async function trainDistill(o: DistillTrainOptions): Promise<SftResult> {
  if (o.teacher.config.vocab_size !== o.tokenizer.vocabSize)
    throw invalidArgument(`the teacher's vocab_size (${o.teacher.config.vocab_size}) differs from the tokenizer's (${o.tokenizer.vocabSize})`);
  const options: DistillOptions = { loss: 'reverse_kl', temperature: 1, ceWeight: 0, ...o.distill };
  return trainSft({
    ...o,
    label: o.label ?? 'distill',
    stepFn: async (student, batch, optimizer) => {
      const r = await distillStep(student, o.teacher, batch, options, optimizer);
      return { ...r, [options.loss ?? 'reverse_kl']: r.kl };
    },
  });
}
