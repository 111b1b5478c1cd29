// Machine figures every ratio is taken against: thread count, the single-precision FMA peak measured by a
// micro-kernel in this very run, and STREAM-like copy bandwidth.
import type { BenchContext } from './run.ts';
import { native } from '../lib/native.ts';

export const prefixes = ['machine.'];

export async function run(ctx: BenchContext): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const threads = native.numThreads();
  out['machine.threads'] = threads;
  if (ctx.wants('machine.fma_peak_gflops')) {
    out['machine.fma_peak_gflops'] = await native.measureMachine('fma', threads, 1.0);
    out['machine.fma_peak_1thread_gflops'] = await native.measureMachine('fma', 1, 0.5);
    ctx.note(`FMA peak: ${out['machine.fma_peak_gflops'].toFixed(1)} GFLOP/s on ${threads} threads (${native.cpuIsa()})`);
  }
  if (ctx.wants('machine.mem_bandwidth_gbs')) {
    out['machine.mem_bandwidth_gbs'] = await native.measureMachine('copy', threads, 1.5);
    ctx.note(`copy bandwidth: ${out['machine.mem_bandwidth_gbs'].toFixed(1)} GB/s`);
  }
  return out;
}
