// GEMM throughput for 1024^3 and for the shapes a training step of each preset runs (batch 32 x seq 32 =
// 1024 token rows), as GFLOP/s and as a fraction of the measured FMA peak, for the built-in kernel and,
// when present, the system BLAS.
import type { BenchContext } from './run.ts';
import { native } from '../lib/native.ts';
import { PRESETS } from '../lib/model/model.ts';

export const prefixes = ['gemm.'];
export const needs = ['machine.fma_peak_gflops', 'machine.threads'];

interface Shape {
  name: string;
  ta: boolean;
  tb: boolean;
  M: number;
  N: number;
  K: number;
}

function modelShapes(preset: 'student' | 'teacher'): Shape[] {
  const { n_embd: C, vocab_size: V } = PRESETS[preset];
  const BT = 1024;
  return [
    { name: `${preset}.qkv_fwd`, ta: false, tb: false, M: BT, N: 3 * C, K: C },
    { name: `${preset}.fc_fwd`, ta: false, tb: false, M: BT, N: 4 * C, K: C },
    { name: `${preset}.fcproj_fwd`, ta: false, tb: false, M: BT, N: C, K: 4 * C },
    { name: `${preset}.lmhead_fwd`, ta: false, tb: true, M: BT, N: V, K: C },
    { name: `${preset}.lmhead_dx`, ta: false, tb: false, M: BT, N: C, K: V },
    { name: `${preset}.lmhead_dw`, ta: true, tb: false, M: V, N: C, K: BT },
    { name: `${preset}.fc_dx`, ta: false, tb: true, M: BT, N: C, K: 4 * C },
    { name: `${preset}.fc_dw`, ta: true, tb: false, M: C, N: 4 * C, K: BT },
  ];
}

export async function run(ctx: BenchContext): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const peak = ctx.figures['machine.fma_peak_gflops'];
  const info = native.gemmInfo();
  const backends: ('builtin' | 'blas')[] = info.blasAvailable ? ['builtin', 'blas'] : ['builtin'];
  if (!info.blasAvailable) ctx.note('no system BLAS found: only the built-in kernel is measured');
  const shapes: Shape[] = [{ name: '1024', ta: false, tb: false, M: 1024, N: 1024, K: 1024 }, ...modelShapes('student'), ...modelShapes('teacher')];
  try {
    for (const backend of backends) {
      native.setGemmBackend(backend);
      const prefix = backend === 'builtin' ? 'gemm.' : 'gemm.blas.';
      for (const s of shapes) {
        const name = `${prefix}${s.name}`;
        if (!ctx.wants(`${name}.gflops`) && !ctx.wants('gemm.')) continue;
        const gflops = await native.benchGemm(s.ta, s.tb, s.M, s.N, s.K, 0.6);
        out[`${name}.gflops`] = gflops;
        out[`${name}.fraction_of_peak`] = gflops / peak;
        ctx.note(`${backend.padEnd(7)} ${s.name.padEnd(20)} ${s.ta ? 'T' : 'N'}${s.tb ? 'T' : 'N'} ${s.M}x${s.N}x${s.K}: ${gflops.toFixed(1)} GFLOP/s = ${((100 * gflops) / peak).toFixed(1)} % of peak`);
      }
    }
  } finally {
    native.setGemmBackend('builtin');
  }
  return out;
}
