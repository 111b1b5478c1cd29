// Decoding speed with the KV cache: tokens/s at batch 1, 16 and 64 for both presets, and the latency of
// "10 rewrites of a 6-token query, 16 new tokens" on the student (beam search with 10 beams returning 10,
// and 10 samples). Random-init weights (speed does not depend on the values) and no EOS, so every
// sequence runs the full length. Each figure is printed beside its floor: its arithmetic at the measured
// FMA peak and its weight traffic (every weight read once per forward step) at the measured bandwidth.
import type { BenchContext } from './run.ts';
import { native } from '../lib/native.ts';
import { Model, PRESETS, type ModelConfig } from '../lib/model/model.ts';
import { generate, type GenerateOptions } from '../lib/model/generate.ts';

export const prefixes = ['decode.', 'rewrite10.'];
export const needs = ['machine.'];

const PROMPT_LEN = 6;

function prompt(seed: number, vocab: number): number[] {
  // A fixed pseudo-random query (LCG) so every run decodes the same thing.
  let s = seed * 2654435761 + 1;
  return Array.from({ length: PROMPT_LEN }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s % vocab;
  });
}

/** Multiply-adds of one token's forward at position pos (weights, attention), and of the LM head. */
function macs(c: ModelConfig, pos: number): { body: number; head: number } {
  const C = c.n_embd;
  return { body: c.n_layer * (12 * C * C + 2 * (pos + 1) * C), head: c.vocab_size * C };
}

interface Floor {
  flops: number;
  bytes: number;
}

/** Work of a generation: prefill of every prompt (head on its last token) then `rows` sequences per step. */
function work(c: ModelConfig, prompts: number, rows: number, newTokens: number, bytesPerWeight = 4): Floor {
  let m = 0;
  for (let p = 0; p < PROMPT_LEN; p++) m += prompts * macs(c, p).body;
  m += prompts * macs(c, PROMPT_LEN - 1).head;
  for (let t = 1; t < newTokens; t++) {
    const k = macs(c, PROMPT_LEN + t - 1);
    m += rows * (k.body + k.head);
  }
  const weights = c.n_layer * 12 * c.n_embd * c.n_embd + c.vocab_size * c.n_embd;
  return { flops: 2 * m, bytes: bytesPerWeight * weights * newTokens };
}

function floorMs(f: Floor, peakGflops: number, bandwidthGbs: number): { arith: number; traffic: number } {
  return { arith: f.flops / peakGflops / 1e6, traffic: f.bytes / bandwidthGbs / 1e6 };
}

function percentile(sorted: number[], q: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

export async function run(ctx: BenchContext): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  let peak = ctx.figures['machine.fma_peak_gflops'];
  let bandwidth = ctx.figures['machine.mem_bandwidth_gbs'];
  if (!Number.isFinite(peak)) {
    peak = await native.measureMachine('fma', native.numThreads(), 1.0);
    ctx.note(`machine.fma_peak_gflops not measured in this run; measured here: ${peak.toFixed(1)} GFLOP/s`);
  }
  if (!Number.isFinite(bandwidth)) {
    bandwidth = await native.measureMachine('copy', native.numThreads(), 1.5);
    ctx.note(`machine.mem_bandwidth_gbs not measured in this run; measured here: ${bandwidth.toFixed(1)} GB/s`);
  }
  ctx.note(`decode kernels: ${native.decodeIsa()}, ${native.numThreads()} threads`);

  // Both presets with fp32 weights; the student again with bf16 weights (AMX tiles where native.decodeBf16Isa()
  // is 'amx': its weight traffic is 2 bytes a weight, but its arithmetic floor is still the fp32 FMA peak's,
  // which AMX tiles can beat).
  for (const [preset, weights] of [['student', 'fp32'], ['teacher', 'fp32'], ['student', 'bf16']] as const) {
    const tag = weights === 'bf16' ? `${preset}.bf16` : preset;
    const names = [1, 16, 64].map((b) => `decode.${tag}.batch${b}.tokens_per_s`);
    if (!names.some((n) => ctx.wants(n))) continue;
    if (weights === 'bf16') ctx.note(`bf16 weights: ${native.decodeBf16Isa()} kernels`);
    const config = PRESETS[preset];
    const model = await Model.create(config, { seed: 1 });
    const newTokens = 32;
    for (const batch of [1, 16, 64]) {
      const name = `decode.${tag}.batch${batch}.tokens_per_s`;
      if (!ctx.wants(name)) continue;
      const prompts = Array.from({ length: batch }, (_, i) => prompt(i, config.vocab_size));
      const opts: GenerateOptions = { strategy: 'greedy', maxNewTokens: newTokens, weights };
      await generate(model, prompts, opts);
      // Best of repeats: the bench shares two cores with whatever else runs.
      let best = Infinity;
      const reps = preset === 'teacher' && batch === 64 ? 3 : 5;
      for (let r = 0; r < reps; r++) {
        const t0 = performance.now();
        await generate(model, prompts, opts);
        best = Math.min(best, performance.now() - t0);
      }
      const tps = (batch * newTokens) / (best / 1e3);
      const f = floorMs(work(config, batch, batch, newTokens, weights === 'bf16' ? 2 : 4), peak, bandwidth);
      const bound = Math.max(f.arith, f.traffic);
      out[name] = tps;
      ctx.note(
        `${tag} batch ${batch}: ${tps.toFixed(0)} tokens/s (${best.toFixed(1)} ms for ${newTokens} new tokens after a ${PROMPT_LEN}-token prompt); ` +
          `floor ${f.arith.toFixed(1)} ms arithmetic, ${f.traffic.toFixed(1)} ms weight traffic -> at most ${((batch * newTokens) / (bound / 1e3)).toFixed(0)} tokens/s; ` +
          `measured = ${(best / f.arith).toFixed(2)}x the arithmetic floor, ${(best / f.traffic).toFixed(2)}x the traffic floor`,
      );
    }
    await model.dispose();
  }

  const jobs: [string, GenerateOptions][] = [
    ['beam', { strategy: 'beam', numBeams: 10, numReturnSequences: 10, maxNewTokens: 16 }],
    ['sample', { strategy: 'sample', numReturnSequences: 10, maxNewTokens: 16, temperature: 1, topK: 50, topP: 0.95, seed: 7 }],
    // Optional inference path: the same beam job from a bf16 copy of the weights (packed once and kept with the
    // model; on AMX tiles with bf16 activations where native.decodeBf16Isa() is 'amx').
    ['beam.bf16', { strategy: 'beam', numBeams: 10, numReturnSequences: 10, maxNewTokens: 16, weights: 'bf16' }],
  ];
  if (jobs.some(([k]) => ctx.wants(`rewrite10.${k}.`))) {
    const config = PRESETS.student;
    const model = await Model.create(config, { seed: 2 });
    for (const [kind, opts] of jobs) {
      if (!ctx.wants(`rewrite10.${kind}.p50_ms`) && !ctx.wants(`rewrite10.${kind}.p95_ms`)) continue;
      const times: number[] = [];
      for (let r = 0; r < 5; r++) await generate(model, [prompt(100 + r, config.vocab_size)], opts);
      for (let r = 0; r < 60; r++) {
        const q = [prompt(200 + r, config.vocab_size)];
        const t0 = performance.now();
        const res = await generate(model, q, opts);
        times.push(performance.now() - t0);
        if (res[0].length !== 10 || res[0].some((g) => g.tokens.length !== 16)) throw new Error(`rewrite10.${kind}: expected 10 sequences of 16 tokens`);
      }
      times.sort((a, b) => a - b);
      const p50 = percentile(times, 0.5);
      const p95 = percentile(times, 0.95);
      out[`rewrite10.${kind}.p50_ms`] = p50;
      out[`rewrite10.${kind}.p95_ms`] = p95;
      const w = work(config, 1, 10, 16, kind === 'beam.bf16' ? 2 : 4);
      const f = floorMs(w, peak, bandwidth);
      const bound = Math.max(f.arith, f.traffic);
      ctx.note(
        `student, 10 ${kind.startsWith('beam') ? `beam rewrites (10 beams${kind === 'beam.bf16' ? `, bf16 weights on ${native.decodeBf16Isa()} kernels` : ''})` : 'sampled rewrites'} of a ${PROMPT_LEN}-token query, 16 new tokens: ` +
          `p50 ${p50.toFixed(2)} ms, p95 ${p95.toFixed(2)} ms (best ${times[0].toFixed(2)} ms); floor ${f.arith.toFixed(2)} ms arithmetic ` +
          `(${(w.flops / 1e9).toFixed(2)} GFLOP at ${peak.toFixed(0)} GFLOP/s), ${f.traffic.toFixed(2)} ms weight traffic ` +
          `(${(w.bytes / 1e6).toFixed(0)} MB at ${bandwidth.toFixed(1)} GB/s); p50 = ${(p50 / f.arith).toFixed(2)}x the arithmetic floor, ` +
          `${(p50 / f.traffic).toFixed(2)}x the traffic floor, ${(p50 / bound).toFixed(2)}x the larger`,
      );
    }
    await model.dispose();
  }
  return out;
}
