// GPU bench (run by `npm run check:gpu` on a machine with an NVIDIA GPU and the CMake build):
//   - GPT-2 124M training (random weights, B x T = 8 x 1024, bf16): tokens/s and MFU against the GPU's
//     dense bf16 peak (--peak-tflops, default 989.4: the H100 / H200 SXM datasheet figure);
//   - decoding with the `student` preset: tokens/s at batch 1 and 64 (greedy, 32 new tokens);
//   - 10 rewrites of one 6-token query with the `student` preset (10 beams, 16 new tokens): p50 / p95 ms.
// Prints one line per figure and writes them to --out (default bench/results/gpu-latest.json).
// Usage: node --import tsx bench/gpu.ts [--seconds S] [--peak-tflops X] [--out FILE] [--quick]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Model, PRESETS, cudaInfo, type ModelConfig } from '../lib/model/model.ts';
import { generate } from '../lib/model/generate.ts';

const here = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '20' }, 'peak-tflops': { type: 'string', default: '989.4' }, out: { type: 'string' }, quick: { type: 'boolean' } },
});
const seconds = Number(values.seconds);
const peak = Number(values['peak-tflops']) * 1e12;
const out = values.out ?? join(here, 'results', 'gpu-latest.json');
const figures: Record<string, number | string> = {};
const report = (name: string, value: number, unit: string): void => {
  figures[name] = value;
  console.log(`${name.padEnd(40)} ${value.toPrecision(4).padStart(10)} ${unit}`);
};

function randomBatch(B: number, T: number, V: number, seed: number): { tokens: Int32Array; targets: Int32Array; batch: number; seq: number } {
  let s = seed >>> 0;
  const tokens = new Int32Array(B * T), targets = new Int32Array(B * T);
  for (let i = 0; i < B * T; ++i) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    tokens[i] = s % V;
    targets[i] = (s >>> 8) % V;
  }
  return { tokens, targets, batch: B, seq: T };
}

async function trainBench(): Promise<void> {
  const config: ModelConfig = { vocab_size: 50257, n_ctx: 1024, n_layer: 12, n_head: 12, n_embd: 768 };
  const B = values.quick ? 4 : 8, T = 1024;
  const model = await Model.create(config, { seed: 1, device: 'cuda' });
  const N = model.parameterCount();
  // FLOPs per token: 6 N for the matrices (forward 2 N, backward 4 N) plus causal attention's
  // 6 L T C (forward 2 x (QK^T + PV) over T/2 keys on average = 2 L T C, backward twice that): llm.c's count
  // uses 6 N + 12 L T C (no causal halving); the lower, causal count is used here.
  const flopsPerToken = 6 * N + 6 * config.n_layer * T * config.n_embd;
  const batch = randomBatch(B, T, config.vocab_size, 7);
  const optim = { lr: 1e-4, warmupSteps: 0 };
  await model.train([batch, batch], optim); // warm-up: allocations, cuBLASLt heuristics
  let steps = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    await model.train([batch], optim);
    steps += 1;
  }
  const s = (performance.now() - t0) / 1000;
  const tps = (steps * B * T) / s;
  report('gpu.train.gpt2_124m.tokens_per_s', tps, 'tok/s');
  report('gpu.train.gpt2_124m.mfu', (tps * flopsPerToken) / peak, `of ${(peak / 1e12).toFixed(1)} TFLOP/s`);
  await model.dispose();
}

async function decodeBench(): Promise<void> {
  const model = await Model.create(PRESETS.student, { seed: 1, device: 'cuda' });
  const V = PRESETS.student.vocab_size;
  const prompt = (i: number): number[] => [11 + (i % 50), 200, 300 + (i % 7), 400, 500, 600];
  for (const batch of [1, 64]) {
    const prompts = Array.from({ length: batch }, (_, i) => prompt(i));
    await generate(model, prompts, { maxNewTokens: 32 });
    let tokens = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < (seconds * 1000) / 4) {
      const r = await generate(model, prompts, { maxNewTokens: 32 });
      tokens += r.reduce((a, x) => a + x[0].tokens.length, 0);
    }
    report(`gpu.decode.student.batch${batch}.tokens_per_s`, tokens / ((performance.now() - t0) / 1000), 'tok/s');
  }
  const times: number[] = [];
  const q = [prompt(3)];
  for (let i = 0; i < 5; ++i) await generate(model, q, { strategy: 'beam', numBeams: 10, numReturnSequences: 10, maxNewTokens: 16 });
  const t0 = performance.now();
  while (performance.now() - t0 < (seconds * 1000) / 4 || times.length < 20) {
    const a = performance.now();
    await generate(model, q, { strategy: 'beam', numBeams: 10, numReturnSequences: 10, maxNewTokens: 16, eosTokenId: V - 1 });
    times.push(performance.now() - a);
  }
  times.sort((x, y) => x - y);
  report('gpu.rewrite10.student.beam.p50_ms', times[Math.floor(times.length * 0.5)], 'ms');
  report('gpu.rewrite10.student.beam.p95_ms', times[Math.floor(times.length * 0.95)], 'ms');
  await model.dispose();
}

async function main(): Promise<void> {
  const info = cudaInfo();
  if (info.devices === 0) {
    console.log(`SKIP: no CUDA device (${info.reason}): the GPU bench did not run`);
    process.exitCode = 77;
    return;
  }
  figures.device = info.names[0];
  console.log(`# GPU bench on ${info.names[0]}`);
  await decodeBench();
  await trainBench();
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), ...figures }, null, 2)}\n`);
  console.log(`# wrote ${out}`);
}

await main();
