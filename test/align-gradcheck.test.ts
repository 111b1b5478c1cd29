// The fused distillation and preference kernels against naive double-precision references (materialised
// softmaxes, the definitions written out) and finite differences, through the addon's self-check. Every
// divergence runs with temperature != 1 and masked tokens; the float (AVX2) passes are compared with the
// double reference on a vocabulary that is not a multiple of the vector width. Correct code stays below
// ~3e-6 everywhere; a wrong factor, sign or missing term gives errors of order 1e-2..1.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { native } from '../lib/native.ts';

const TOL = 1e-4;
const DISTILL = ['reverse_kl', 'forward_kl', 'jsd', 'jsd_beta0', 'jsd_beta1', 'reverse_kl_ce', 'jsd_ce'];
const DPO = ['sigmoid', 'sigmoid_smoothed', 'ipo', 'hinge'];

for (const seed of [7, 8]) {
  test(`distillation losses and gradients match the naive reference (seed ${seed})`, () => {
    const e = native.gradcheckAlign(seed);
    for (const c of DISTILL) {
      for (const part of ['loss', 'grad', 'float_loss', 'float_grad']) {
        const k = `distill.${c}.${part}`;
        assert.ok(k in e, `${k} was checked`);
        assert.ok(e[k] < TOL, `${k}: relative error ${e[k]} >= ${TOL}`);
      }
      // In place (the engine's use) must give exactly what a separate output buffer gets.
      assert.is(e[`distill.${c}.in_place`], 0, `${c}: in-place gradient differs from the out-of-place one`);
    }
  });

  test(`sequence log-probs and every DPO loss type match the naive reference (seed ${seed})`, () => {
    const e = native.gradcheckAlign(seed);
    const keys = ['dpo.logps', 'dpo.logps_grad', 'dpo.float_logps', 'dpo.float_grad'];
    for (const c of DPO) for (const mode of ['ref', 'ref_free']) keys.push(`dpo.${c}.${mode}.loss`, `dpo.${c}.${mode}.grad`);
    for (const k of keys) {
      assert.ok(k in e, `${k} was checked`);
      assert.ok(e[k] < TOL, `${k}: relative error ${e[k]} >= ${TOL}`);
    }
  });

  test(`the fused GRPO loss (grpo, bnpo, dr_grpo; first update, old log-probs, k3 KL) matches the naive reference and finite differences (seed ${seed})`, () => {
    const e = native.gradcheckAlign(seed);
    const keys = ['grpo.float_loss', 'grpo.float_grad'];
    for (const c of ['grpo', 'bnpo', 'dr_grpo']) for (const mode of ['first', 'old', 'kl']) keys.push(`grpo.${c}.${mode}.loss`, `grpo.${c}.${mode}.grad`);
    for (const k of keys) {
      assert.ok(k in e, `${k} was checked`);
      assert.ok(e[k] < TOL, `${k}: relative error ${e[k]} >= ${TOL}`);
    }
    assert.is(e['grpo.clipped_tokens_seen'], 0, 'the checks never reached a clipped token');
  });
}

test.run();
