// The engine's optimizer against an independent JavaScript AdamW: bias-corrected moments, decoupled
// weight decay on the matrices only, global-norm gradient clipping and the learning-rate schedules
// (linear warm-up, then cosine / linear decay to lr * minLrRatio, or constant). Each step's gradients are
// read from the engine; the reference then predicts the step's parameters and moments, which must match
// to float32 rounding. The schedules are also checked against values worked out by hand.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Model, withNativeHandle, type Batch, type OptimizerOptions } from '../lib/model/model.ts';

const CONFIG = { vocab_size: 29, n_ctx: 8, n_layer: 1, n_head: 2, n_embd: 8 };

function batch(seed: number): Batch {
  let s = seed >>> 0;
  const next = (): number => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
  const B = 2, T = CONFIG.n_ctx, n = B * T;
  const tokens = Int32Array.from({ length: n }, () => next() % CONFIG.vocab_size);
  const targets = Int32Array.from({ length: n }, () => next() % CONFIG.vocab_size);
  // The first two positions of each row do not count, like the query part of "query <sep> rewrite".
  const lossMask = Float32Array.from({ length: n }, (_, i) => (i % T < 2 ? 0 : 1));
  return { batch: B, seq: T, tokens, targets, lossMask };
}

/** Fully specified options (no engine default is relied on). */
type Options = Required<OptimizerOptions>;

/**
 * Learning rate of optimizer step `step` (0-based): linear warm-up lr * (step + 1) / warmupSteps over the
 * first warmupSteps steps, then lr decays from lr to lr * minLrRatio over steps warmupSteps..totalSteps
 * (half a cosine period, or a straight line) and stays there; 'constant' keeps lr after the warm-up.
 */
function referenceLr(o: Options, step: number): number {
  if (step < o.warmupSteps) return (o.lr * (step + 1)) / o.warmupSteps;
  if (o.schedule === 'constant' || o.totalSteps <= o.warmupSteps) return o.lr;
  const progress = Math.min(1, (step - o.warmupSteps) / (o.totalSteps - o.warmupSteps));
  const low = o.lr * o.minLrRatio;
  if (o.schedule === 'linear') return o.lr - (o.lr - low) * progress;
  return low + ((o.lr - low) * (1 + Math.cos(Math.PI * progress))) / 2;
}

/** Deliberate mistakes in the reference, to show the comparison notices them. */
interface Flaw {
  decayEverything?: boolean;
  noBiasCorrection?: boolean;
}

interface TensorState {
  name: string;
  decay: boolean;
  m: Float64Array;
  v: Float64Array;
}

/**
 * AdamW (Loshchilov & Hutter), as torch.optim.AdamW with a global-norm clip as in
 * torch.nn.utils.clip_grad_norm_ (scale max_norm / (norm + 1e-6) when norm > max_norm):
 *   g <- g * clip;  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
 *   p <- p - lr * (m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + wd * p)   (wd only on matrices)
 * Returns the new parameters; updates `state` in place (float64 throughout).
 */
function referenceStep(o: Options, t: number, lr: number, params: Map<string, Float32Array>, grads: Map<string, Float32Array>, state: TensorState[], flaw: Flaw = {}): { params: Map<string, Float64Array>; norm: number } {
  let sq = 0;
  for (const g of grads.values()) for (const x of g) sq += x * x;
  const norm = Math.sqrt(sq);
  const clip = o.gradClip > 0 && norm > o.gradClip ? o.gradClip / (norm + 1e-6) : 1;
  const bc1 = flaw.noBiasCorrection ? 1 : 1 - o.beta1 ** t, bc2 = flaw.noBiasCorrection ? 1 : 1 - o.beta2 ** t;
  const out = new Map<string, Float64Array>();
  for (const s of state) {
    const p = params.get(s.name)!, g = grads.get(s.name)!;
    const wd = s.decay || flaw.decayEverything ? o.weightDecay : 0;
    const next = new Float64Array(p.length);
    for (let i = 0; i < p.length; i++) {
      const gi = g[i] * clip;
      s.m[i] = o.beta1 * s.m[i] + (1 - o.beta1) * gi;
      s.v[i] = o.beta2 * s.v[i] + (1 - o.beta2) * gi * gi;
      next[i] = p[i] - lr * (s.m[i] / bc1 / (Math.sqrt(s.v[i] / bc2) + o.eps) + wd * p[i]);
    }
    out.set(s.name, next);
  }
  return { params: out, norm };
}

const ULP = 2 ** -23;

/** Worst violation of |got - want| <= rel * |want| + abs, as a ratio (<= 1 passes), with where it happened. */
function worst(got: Float32Array, want: Float64Array, rel: number, abs: number): { ratio: number; at: number } {
  let ratio = 0, at = -1;
  for (let i = 0; i < got.length; i++) {
    const r = Math.abs(got[i] - want[i]) / (rel * Math.abs(want[i]) + abs);
    if (r > ratio) [ratio, at] = [r, i];
  }
  return { ratio, at };
}

interface RunReport {
  lrs: number[];
  norms: number[];
}

/**
 * Runs `steps` engine steps with options `o`, checking each against the reference. `reference` may differ
 * from `o`, and `flaw` break it (a deliberately wrong reference must make this throw). `checkReported`
 * false skips the checks of the learning rate and gradient norm the step reports, so that only the
 * parameters and moments decide.
 */
async function compare(o: Options, steps: number, reference: Options = o, flaw: Flaw = {}, checkReported = true): Promise<RunReport> {
  const model = await Model.create(CONFIG, { seed: 11 });
  const infos = model.tensors();
  // Decoupled weight decay applies to the matrices (embeddings, attention and MLP weights), not to the
  // biases and LayerNorm gains: decided here from the shapes.
  const state: TensorState[] = infos.map((t) => ({ name: t.name, decay: t.shape.length >= 2, m: new Float64Array(t.shape.reduce((a, b) => a * b, 1)), v: new Float64Array(t.shape.reduce((a, b) => a * b, 1)) }));
  assert.ok(state.some((s) => s.decay) && state.some((s) => !s.decay));
  const report: RunReport = { lrs: [], norms: [] };
  for (let step = 0; step < steps; step++) {
    const before = new Map(infos.map((t) => [t.name, model.readTensor(t.name)]));
    const r = await model.trainStep(batch(100 + step), o);
    const grads = new Map(await withNativeHandle(model, (h) => infos.map((t) => [t.name, h.readTensor('grad', t.name)] as const)));
    const lr = referenceLr(reference, step);
    const ref = referenceStep(reference, step + 1, lr, before, grads, state, flaw);
    report.lrs.push(r.lr);
    report.norms.push(ref.norm);
    assert.is(r.step, step + 1);
    if (checkReported) {
      assert.ok(Math.abs(r.lr - lr) <= 1e-12 * lr, `step ${step}: learning rate ${r.lr}, reference ${lr}`);
      assert.ok(Math.abs(r.gradNorm - ref.norm) <= 1e-9 * ref.norm, `step ${step}: gradient norm ${r.gradNorm}, reference ${ref.norm}`);
    }
    for (const t of infos) {
      const s = state.find((x) => x.name === t.name)!;
      const [m, v] = await withNativeHandle(model, (h) => [h.readTensor('m', t.name), h.readTensor('v', t.name)]);
      let mScale = 0, vScale = 0;
      for (let i = 0; i < s.m.length; i++) {
        mScale = Math.max(mScale, Math.abs(s.m[i]));
        vScale = Math.max(vScale, s.v[i]);
      }
      const wm = worst(m, s.m, 1e-5, 1e-6 * mScale + 1e-30), wv = worst(v, s.v, 1e-5, 1e-6 * vScale + 1e-38);
      assert.ok(wm.ratio <= 1, `step ${step} ${t.name}: first moment [${wm.at}] = ${m[wm.at]}, reference ${s.m[wm.at]}`);
      assert.ok(wv.ratio <= 1, `step ${step} ${t.name}: second moment [${wv.at}] = ${v[wv.at]}, reference ${s.v[wv.at]}`);
      // Parameters: a few float32 roundings of the new value, plus 1e-5 of the step's size (at least of the
      // learning rate: where the moments nearly cancel, their float32 rounding is relative to lr, not to the
      // tiny step).
      const p = model.readTensor(t.name), want = ref.params.get(t.name)!, old = before.get(t.name)!;
      let bad = -1;
      for (let i = 0; i < p.length; i++) {
        const tol = 1e-5 * Math.max(Math.abs(want[i] - old[i]), lr) + 4 * ULP * Math.abs(want[i]);
        if (!(Math.abs(p[i] - want[i]) <= tol)) {
          bad = i;
          break;
        }
      }
      assert.ok(bad < 0, `step ${step} ${t.name}[${bad}]: ${p[bad]} (was ${old[bad]}), reference ${want[bad]}`);
    }
  }
  return report;
}

const cosine: Options = { lr: 1e-2, beta1: 0.8, beta2: 0.9, eps: 1e-6, weightDecay: 0.1, gradClip: 0.5, warmupSteps: 2, totalSteps: 6, minLrRatio: 0.1, schedule: 'cosine' };
const linear: Options = { lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.05, gradClip: 1e3, warmupSteps: 2, totalSteps: 6, minLrRatio: 0.1, schedule: 'linear' };
const constant: Options = { lr: 2e-3, beta1: 0.85, beta2: 0.95, eps: 1e-7, weightDecay: 0, gradClip: 0, warmupSteps: 3, totalSteps: 0, minLrRatio: 0.1, schedule: 'constant' };

test('schedules: warm-up then cosine / linear decay to lr * minLrRatio, held after totalSteps (values by hand)', async () => {
  // lr 0.01, 2 warm-up steps, decay over steps 2..6 to 0.001, 8 steps. Cosine at progress 1/4, 1/2, 3/4:
  // 0.001 + 0.009 (1 + cos(pi/4)) / 2 = 0.00868198, 0.001 + 0.0045 = 0.0055, 0.001 + 0.009 (1 - cos(pi/4)) / 2 = 0.00231802.
  const c = await compare(cosine, 8);
  const wantCosine = [0.005, 0.01, 0.01, 0.0086819805, 0.0055, 0.0023180195, 0.001, 0.001];
  c.lrs.forEach((lr, i) => assert.ok(Math.abs(lr - wantCosine[i]) < 1e-10, `cosine step ${i}: ${lr}, expected ${wantCosine[i]}`));
  const l = await compare(linear, 8);
  const wantLinear = [0.005, 0.01, 0.01, 0.00775, 0.0055, 0.00325, 0.001, 0.001];
  l.lrs.forEach((lr, i) => assert.ok(Math.abs(lr - wantLinear[i]) < 1e-12, `linear step ${i}: ${lr}, expected ${wantLinear[i]}`));
  const k = await compare(constant, 5);
  const wantConstant = [2e-3 / 3, 4e-3 / 3, 2e-3, 2e-3, 2e-3];
  k.lrs.forEach((lr, i) => assert.ok(Math.abs(lr - wantConstant[i]) < 1e-15, `constant step ${i}: ${lr}, expected ${wantConstant[i]}`));
});

test('AdamW with clipping and decoupled weight decay matches the reference step by step', async () => {
  const c = await compare(cosine, 8);
  assert.ok(c.norms.every((n) => n > cosine.gradClip), `clipping active on every step (norms ${c.norms.map((n) => n.toFixed(3)).join(', ')})`);
  const l = await compare(linear, 8);
  assert.ok(l.norms.every((n) => n < linear.gradClip), 'clip threshold never reached');
});

test('clipping that switches on and off between steps', async () => {
  // A threshold between the smallest and the largest gradient norm of the run: some steps clipped, some not.
  const probe = await compare({ ...cosine, gradClip: 0 }, 8);
  const sorted = [...probe.norms].sort((a, b) => a - b);
  const threshold = (sorted[2] + sorted[5]) / 2;
  const r = await compare({ ...cosine, gradClip: threshold }, 8);
  assert.ok(r.norms.some((n) => n > threshold) && r.norms.some((n) => n < threshold), `norms ${r.norms.join(', ')} around ${threshold}`);
});

test('the comparison is sharp: a reference with one hyperparameter or rule changed is rejected', async () => {
  // Only the parameters and moments are compared here (not the lr / norm the step reports), so each
  // mistake must show in what the optimizer wrote.
  const wrong: [string, Options, Options, Flaw][] = [
    ['beta1', cosine, { ...cosine, beta1: 0.81 }, {}],
    ['beta2', cosine, { ...cosine, beta2: 0.91 }, {}],
    ['eps', linear, { ...linear, eps: 1e-6 }, {}],
    ['weight decay', cosine, { ...cosine, weightDecay: 0.11 }, {}],
    ['clip threshold', cosine, { ...cosine, gradClip: 0.45 }, {}],
    ['no clipping', cosine, { ...cosine, gradClip: 0 }, {}],
    ['learning rate', linear, { ...linear, lr: 1.01e-2 }, {}],
    ['warm-up length', cosine, { ...cosine, warmupSteps: 3 }, {}],
    ['total steps', linear, { ...linear, totalSteps: 7 }, {}],
    ['min lr ratio', linear, { ...linear, minLrRatio: 0.2 }, {}],
    ['schedule', cosine, { ...cosine, schedule: 'linear' }, {}],
    ['weight decay on every tensor', cosine, cosine, { decayEverything: true }],
    ['no bias correction', linear, linear, { noBiasCorrection: true }],
  ];
  for (const [what, engine, reference, flaw] of wrong) {
    let error: unknown;
    try {
      await compare(engine, 8, reference, flaw, false);
    } catch (err) {
      error = err;
    }
    assert.ok(error !== undefined, `a reference with a different ${what} still matched the engine`);
    assert.is((error as Error).name, 'Assertion', String(error));
  }
});

test.run();
