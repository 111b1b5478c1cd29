// GRPO steps through the public API: the loss and logs a step reports equal a TypeScript reference computed
// from the per-token log-probs (advantages, clipped ratio, k3 KL, the three aggregations); repeated updates
// raise the best completion's log-prob and lower the worst one's; fully clipped tokens carry no gradient;
// a reference model and its precomputed log-probs give the same step; bad input is refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Model } from '../lib/model/model.ts';
import { buildGrpoBatch, grpoStep, grpoTokenLogProbs, type GrpoGroup, type GrpoLossType } from '../lib/model/align.ts';
import { MinielmError } from '../lib/errors.ts';

const CONFIG = { vocab_size: 37, n_ctx: 24, n_layer: 2, n_head: 2, n_embd: 16 };
const G = 4;

function groups(): GrpoGroup[] {
  return [
    { prompt: [1, 2, 3], completions: [[4, 5], [6, 7, 8], [9], [10, 11, 12, 13]], rewards: [1, 0.2, -0.5, 0.7] },
    { prompt: [14, 15], completions: [[16], [17, 18], [19, 20, 21], [22]], rewards: [0, 0, 1, 0.25] },
  ];
}

/** The GRPO loss from per-token log-probs, written out from the definitions. */
function referenceLoss(gs: GrpoGroup[], model: Model, logp: Float64Array, old: Float64Array | null, ref: Float64Array | null, o: { lossType: GrpoLossType; epsLow: number; epsHigh: number; beta: number; maxLen?: number }): { loss: number; low: number; high: number; kl: number } {
  const { batch, rewards } = buildGrpoBatch(gs, model);
  const T = batch.seq, n = batch.batch;
  const adv: number[] = [];
  for (let p = 0; p < n / G; p++) {
    const r = Array.from(rewards.subarray(p * G, p * G + G));
    const mean = r.reduce((a, b) => a + b, 0) / G;
    const sd = Math.sqrt(r.reduce((a, b) => a + (b - mean) ** 2, 0) / (G - 1));
    for (const x of r) adv.push((x - mean) / (sd + 1e-4));
  }
  let total = 0, tokens = 0, low = 0, high = 0, kl = 0, perSeq = 0;
  for (let s = 0; s < n; s++) {
    let seqLoss = 0, seqTok = 0;
    for (let t = 0; t < T; t++) {
      const k = s * T + t;
      if (batch.lossMask![k] === 0) continue;
      const rho = Math.exp(logp[k] - (old ? old[k] : logp[k]));
      const A = adv[s];
      const clipped = Math.min(Math.max(rho, 1 - o.epsLow), 1 + o.epsHigh);
      let l = -Math.min(rho * A, clipped * A);
      if (ref) {
        const d = ref[k] - logp[k];
        kl += Math.exp(d) - d - 1;
        l += o.beta * (Math.exp(d) - d - 1);
      }
      if (rho < 1 - o.epsLow && A < 0) low++;
      if (rho > 1 + o.epsHigh && A > 0) high++;
      seqLoss += l;
      seqTok++;
    }
    total += seqLoss;
    tokens += seqTok;
    perSeq += seqTok ? seqLoss / seqTok : 0;
  }
  const loss = o.lossType === 'grpo' ? perSeq / n : o.lossType === 'bnpo' ? total / tokens : total / (n * (o.maxLen || T));
  return { loss, low: low / tokens, high: high / tokens, kl: kl / tokens };
}

function close(a: number, b: number, tol: number, what: string): void {
  assert.ok(Math.abs(a - b) <= tol * (1 + Math.abs(b)), `${what}: ${a} vs ${b}`);
}

test('the reported loss, rewards and clip ratios equal a reference computed from the per-token log-probs (grpo, bnpo, dr_grpo)', async () => {
  const gs = groups();
  for (const lossType of ['grpo', 'bnpo', 'dr_grpo'] as const) {
    const policy = await Model.create(CONFIG, { seed: 3 });
    const reference = await Model.create(CONFIG, { seed: 4 });
    const logp = await grpoTokenLogProbs(policy, gs);
    const refLp = await grpoTokenLogProbs(reference, gs);
    // Old log-probs off the current ones, so both clip bounds are reached.
    const old = logp.map((x, i) => (x === 0 ? 0 : x + (i % 3 === 0 ? 0.6 : i % 3 === 1 ? -0.6 : 0.05)));
    const o = { lossType, epsLow: 0.2, epsHigh: 0.28, beta: 0.04, maxLen: lossType === 'dr_grpo' ? 6 : undefined };
    const want = referenceLoss(gs, policy, logp, old, refLp, o);
    const r = await grpoStep(policy, gs, { lossType, epsilonLow: 0.2, epsilonHigh: 0.28, beta: 0.04, reference, oldLogps: old, maxCompletionLength: o.maxLen }, { lr: 1e-3 });
    close(r.loss, want.loss, 1e-5, `${lossType} loss`);
    close(r['clip_ratio/low_mean'], want.low, 1e-9, `${lossType} clip low`);
    close(r['clip_ratio/high_mean'], want.high, 1e-9, `${lossType} clip high`);
    close(r.kl, want.kl, 1e-5, `${lossType} kl`);
    assert.ok(want.low > 0 && want.high > 0, 'the case reaches both clip bounds');
    close(r.reward, (1 + 0.2 - 0.5 + 0.7 + 0 + 0 + 1 + 0.25) / 8, 1e-12, 'reward');
    assert.is(r['completions/mean_length'], (2 + 3 + 1 + 4 + 1 + 2 + 3 + 1) / 8);
    assert.is(r.step, 1);
    await policy.dispose();
    await reference.dispose();
  }
});

test('mu updates on the same samples raise the best completion and lower the worst; clipping stops them', async () => {
  const gs = groups();
  const policy = await Model.create(CONFIG, { seed: 5 });
  const before = await grpoTokenLogProbs(policy, gs);
  const { batch } = buildGrpoBatch(gs, policy);
  const seqLogp = (lp: Float64Array, s: number): number => {
    let sum = 0;
    for (let t = 0; t < batch.seq; t++) sum += lp[s * batch.seq + t];
    return sum;
  };
  let last;
  for (let i = 0; i < 8; i++) last = await grpoStep(policy, gs, { oldLogps: before, epsilonLow: 0.2 }, { lr: 3e-3, weightDecay: 0 });
  const after = await grpoTokenLogProbs(policy, gs);
  // Group 0: completion 0 has the highest reward, completion 2 the lowest.
  assert.ok(seqLogp(after, 0) > seqLogp(before, 0), `best: ${seqLogp(before, 0)} -> ${seqLogp(after, 0)}`);
  assert.ok(seqLogp(after, 2) < seqLogp(before, 2), `worst: ${seqLogp(before, 2)} -> ${seqLogp(after, 2)}`);
  // Group 1: completion 6 (reward 1) up.
  assert.ok(seqLogp(after, 6) > seqLogp(before, 6));
  assert.ok(last!['clip_ratio/region_mean'] > 0, 'after 8 updates on one batch some tokens are clipped');
  await policy.dispose();

  // Every token clipped in the direction of its advantage: the surrogate is flat, the gradient is zero.
  const p2 = await Model.create(CONFIG, { seed: 6 });
  const lp = await grpoTokenLogProbs(p2, gs);
  const { rewards } = buildGrpoBatch(gs, p2);
  const mean = (p: number): number => (rewards[p * G] + rewards[p * G + 1] + rewards[p * G + 2] + rewards[p * G + 3]) / G;
  const old = lp.map((x, k) => {
    if (x === 0) return 0;
    const s = Math.floor(k / batch.seq), A = rewards[s] - mean(Math.floor(s / G));
    return A > 0 ? x - 1 : A < 0 ? x + 1 : x; // ratio e (> 1.2) where A > 0, 1/e (< 0.8) where A < 0
  });
  const r = await grpoStep(p2, gs, { oldLogps: old }, { lr: 1e-2, weightDecay: 0 });
  assert.is(r['clip_ratio/region_mean'], 1, 'every token is clipped');
  assert.ok(r.gradNorm < 1e-6, `gradient norm ${r.gradNorm} with every token clipped`);
  await p2.dispose();
});

test('a reference model and its precomputed per-token log-probs give the same step', async () => {
  const gs = groups();
  const ref = await Model.create(CONFIG, { seed: 8 });
  const refLp = await grpoTokenLogProbs(ref, gs);
  const a = await Model.create(CONFIG, { seed: 9 });
  const b = await Model.create(CONFIG, { seed: 9 });
  const ra = await grpoStep(a, gs, { beta: 0.1, reference: ref }, { lr: 1e-3 });
  const rb = await grpoStep(b, gs, { beta: 0.1, reference: refLp }, { lr: 1e-3 });
  assert.is(ra.loss, rb.loss);
  assert.is(ra.kl, rb.kl);
  assert.ok(ra.kl > 0);
  assert.equal(Array.from(a.readTensor('wte.weight')), Array.from(b.readTensor('wte.weight')));
  for (const m of [ref, a, b]) await m.dispose();
});

test('bad groups and options are refused with a clear MinielmError', async () => {
  const policy = await Model.create(CONFIG, { seed: 1 });
  const gs = groups();
  const bad: [string, () => Promise<unknown>, RegExp][] = [
    ['uneven groups', () => grpoStep(policy, [gs[0], { ...gs[1], completions: gs[1].completions.slice(0, 3), rewards: [0, 1, 2] }], {}, { lr: 1e-3 }), /same number/],
    ['one completion', () => grpoStep(policy, [{ prompt: [1], completions: [[2]], rewards: [1] }], {}, { lr: 1e-3 }), /at least 2 completions/],
    ['NaN reward', () => grpoStep(policy, [{ ...gs[0], rewards: [1, NaN, 0, 0] }], {}, { lr: 1e-3 }), /finite/],
    ['beta without reference', () => grpoStep(policy, gs, { beta: 0.1 }, { lr: 1e-3 }), /needs options.reference/],
    ['loss type', () => grpoStep(policy, gs, { lossType: 'ppo' as GrpoLossType }, { lr: 1e-3 }), /lossType/],
    ['epsilon', () => grpoStep(policy, gs, { epsilonLow: 1.5 }, { lr: 1e-3 }), /epsilonLow/],
    ['old log-probs length', () => grpoStep(policy, gs, { oldLogps: new Float64Array(3) }, { lr: 1e-3 }), /oldLogps/],
    ['token outside the vocabulary', () => grpoStep(policy, [{ ...gs[0], completions: [[99], [1], [2], [3]] }], {}, { lr: 1e-3 }), /not a token id/],
  ];
  for (const [name, call, re] of bad) {
    try {
      await call();
      assert.unreachable(`${name} accepted`);
    } catch (err) {
      assert.instance(err, MinielmError, name);
      assert.is((err as MinielmError).code, 'MINIELM_INVALID_ARGUMENT', name);
      assert.match((err as Error).message, re, name);
    }
  }
  // The policy is still usable.
  const r = await grpoStep(policy, gs, {}, { lr: 1e-3 });
  assert.ok(Number.isFinite(r.loss));
  await policy.dispose();
});

test.run();
