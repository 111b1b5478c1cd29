// `minielm info`: what this installation runs on: the addon file, the CPU level of each kernel family, the
// GEMM backend and the thread count. The addon is compiled for plain x86-64; AVX2 / AVX-512 kernels are
// chosen at run time, so this is where a user sees which ones their CPU gets.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { addonPath, native } from '../native.ts';

export const help = `Usage: minielm info [--json]

Prints the native addon in use, which instruction-set level each kernel family runs at on this CPU
(MINIELM_ISA=generic|avx2 caps it), the GEMM backend, the number of threads and the CUDA devices the
addon can use (a CUDA build comes from npm run build:cmake; MINIELM_ADDON=FILE loads a given addon).`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean' } }, strict: true });
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const require = createRequire(import.meta.url);
  let addon = addonPath;
  if (!addon) try {
    const gypBuild = require('node-gyp-build') as { resolve?: (dir: string) => string };
    addon = gypBuild.resolve?.(root) ?? '';
  } catch {
    addon = '';
  }
  const info = { addon, platform: `${process.platform}-${process.arch}`, node: process.version, isa: native.isaInfo(), gemm: native.gemmInfo(), threads: native.numThreads(), cuda: native.cudaInfo() };
  if (values.json) {
    console.log(JSON.stringify(info, null, 2));
    return 0;
  }
  console.log(`addon     ${info.addon || '(unknown path)'} (${info.platform}, Node ${info.node})`);
  console.log(`cpu       ${info.isa.cpu}; kernels capped at ${info.isa.selected}`);
  console.log(`gemm      ${info.gemm.backend === 'blas' ? `BLAS (${info.gemm.blasLibrary})` : `built-in ${info.isa.gemm}`}${info.gemm.blasAvailable && info.gemm.backend !== 'blas' ? `; BLAS available: ${info.gemm.blasLibrary}` : ''}`);
  console.log(`rows      softmax / GELU / distillation: ${info.isa.rowKernels}`);
  console.log(`decode    ${info.isa.decode}; bf16 weights: ${info.isa.decodeBf16}`);
  console.log(`threads   ${info.threads}`);
  console.log(`cuda      ${info.cuda.devices > 0 ? info.cuda.names.map((n, i) => `cuda:${i} ${n}`).join('; ') : `none: ${info.cuda.reason}`}`);
  return 0;
}
