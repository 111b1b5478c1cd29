// The alignment loss kernels alone (no model): the fused reverse-KL distillation kernel and the DPO kernel
// (sequence log-probs + loss + in-place gradient), in GB/s of logits processed — logit bytes read plus
// written per call: student + teacher read and student written for reverse KL; the policy logits read twice
// (log-probs, then the backward after the whole buffer went by) and written once for DPO; read once and
// written once for GRPO (one fused pass per row: max, exp sum, gradient; groups of 8 completions of 16
// tokens, old log-probs given, so some tokens clip). All touch each
// element a few times from cache, so the roof is the machine's copy bandwidth, printed beside them.
import type { BenchContext } from './run.ts';
import { native } from '../lib/native.ts';

export const prefixes = ['kernel.'];
export const needs = ['machine.'];

// Student-sized logits: 1024 rows (e.g. 16 sequences x 64 positions) x the 8192-word vocabulary.
const ROWS = 1024;
const VOCAB = 8192;

export async function run(ctx: BenchContext): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  let bandwidth = ctx.figures['machine.mem_bandwidth_gbs'];
  if (!Number.isFinite(bandwidth)) {
    bandwidth = await native.measureMachine('copy', native.numThreads(), 1.5);
    ctx.note(`machine.mem_bandwidth_gbs not measured in this run; copy bandwidth measured here: ${bandwidth.toFixed(1)} GB/s`);
  }
  for (const [kind, name] of [['reverse_kl', 'kernel.reverse_kl.gbs'], ['dpo', 'kernel.dpo.gbs'], ['grpo', 'kernel.grpo.gbs']] as const) {
    if (!ctx.wants(name)) continue;
    // Best of three runs of ~1 s each (the bench shares two cores with whatever else runs).
    let best = { seconds: Infinity, bytes: 0, gbs: 0, calls: 0 };
    for (let rep = 0; rep < 3; rep++) {
      const t = await native.benchAlignKernel(kind, ROWS, VOCAB, 1);
      if (t.gbs > best.gbs) best = t;
    }
    out[name] = best.gbs;
    ctx.note(
      `${kind}: ${ROWS} x ${VOCAB} logits, ${(best.seconds * 1e3).toFixed(2)} ms/call, ${(best.bytes / 1e6).toFixed(0)} MB moved, ` +
        `${best.gbs.toFixed(2)} GB/s = ${((100 * best.gbs) / bandwidth).toFixed(0)} % of ${bandwidth.toFixed(1)} GB/s copy bandwidth`,
    );
  }
  return out;
}
