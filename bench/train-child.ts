// Runs one preset's training benchmark in a fresh process so its peak RSS is the training step's own.
// Prints one JSON line: {tokensPerS, stepMs, flopsPerStep, peakRssMb, params}.
import { Model, PRESETS } from '../lib/model/model.ts';

const preset = process.argv[2] as 'student' | 'teacher';
const seconds = Number(process.argv[3] ?? 5);
const config = PRESETS[preset];
const B = 32, T = 32;
const model = await Model.create(config, { seed: 1 });
const tokens = Int32Array.from({ length: B * T }, (_, i) => (i * 2654435761) % config.vocab_size);
const targets = Int32Array.from({ length: B * T }, (_, i) => (i * 40503 + 7) % config.vocab_size);
const batch = { batch: B, seq: T, tokens, targets };
const opt = { lr: 1e-4, weightDecay: 0.1 };
for (let i = 0; i < 2; i++) await model.trainStep(batch, opt);
let best = Infinity;
const started = performance.now();
let steps = 0;
while (performance.now() - started < seconds * 1000 || steps < 3) {
  const t0 = performance.now();
  await model.trainStep(batch, opt);
  best = Math.min(best, performance.now() - t0);
  steps++;
}
const { n_embd: C, n_layer: L, n_ctx } = config;
// 6 N per token for the matrix products (N excludes the position table, a lookup; the tied wte counts
// because the LM head multiplies by it) plus causal attention: 6 * L * T * C per token (QK^T and PV,
// forward 2 x 2 x T/2 x C with the causal half, backward twice that).
const params = model.parameterCount() - n_ctx * C;
const flopsPerToken = 6 * params + 6 * L * T * C;
const flopsPerStep = flopsPerToken * B * T;
const peakRssMb = process.resourceUsage().maxRSS / 1024;
console.log(JSON.stringify({ tokensPerS: (B * T) / (best / 1000), stepMs: best, flopsPerStep, peakRssMb, params: model.parameterCount(), steps }));
