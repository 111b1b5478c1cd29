// Training throughput of the two presets at batch 32 x sequence 32: tokens/s, model-FLOPs utilisation
// against the FMA peak measured in this run, and the peak RSS of a process doing student training steps.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchContext } from './run.ts';

export const prefixes = ['train.'];
export const needs = ['machine.fma_peak_gflops', 'machine.threads'];

const here = dirname(fileURLToPath(import.meta.url));

export async function run(ctx: BenchContext): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const peak = ctx.figures['machine.fma_peak_gflops'];
  for (const preset of ['student', 'teacher'] as const) {
    if (!ctx.wants(`train.${preset}.`)) continue;
    const child = spawnSync(process.execPath, ['--import', 'tsx', join(here, 'train-child.ts'), preset, '6'], { encoding: 'utf8' });
    if (child.status !== 0) throw new Error(`train bench for ${preset} failed: ${child.stderr}`);
    const r = JSON.parse(child.stdout.trim().split('\n').pop()!) as { tokensPerS: number; stepMs: number; flopsPerStep: number; peakRssMb: number; params: number };
    const gflops = r.flopsPerStep / (r.stepMs / 1000) / 1e9;
    out[`train.${preset}.tokens_per_s`] = r.tokensPerS;
    out[`train.${preset}.mfu`] = gflops / peak;
    out[`train.${preset}.step_ms`] = r.stepMs;
    out[`train.${preset}.peak_rss_mb`] = r.peakRssMb;
    ctx.note(`${preset}: ${r.params.toLocaleString()} params, step ${r.stepMs.toFixed(1)} ms, ${r.tokensPerS.toFixed(0)} tok/s, ${gflops.toFixed(1)} GFLOP/s = MFU ${((100 * gflops) / peak).toFixed(1)} %, peak RSS ${r.peakRssMb.toFixed(0)} MB`);
  }
  return out;
}
