// The one module that loads the native addon (prebuilds/ or build/ via node-gyp-build) and declares its
// interface. Everything else imports the typed wrappers in lib/model/.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeConfig {
  vocab_size: number;
  n_ctx: number;
  n_layer: number;
  n_head: number;
  n_embd: number;
}

export interface NativeBatch {
  tokens: Int32Array;
  targets?: Int32Array;
  lossMask?: Float32Array;
  attentionMask?: Uint8Array;
  batch: number;
  seq: number;
}

export interface NativeOptim {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  gradClip?: number;
  warmupSteps?: number;
  totalSteps?: number;
  minLrRatio?: number;
  schedule?: 'cosine' | 'linear' | 'constant';
}

export interface NativeStepStats {
  loss: number;
  gradNorm: number;
  lr: number;
  tokens: number;
  step: number;
}

export interface NativeForwardResult {
  loss?: number;
  lossSum?: number;
  tokens?: number;
  losses?: Float32Array;
  logits?: Float32Array;
}

export interface NativeTensorInfo {
  name: string;
  shape: number[];
  size: number;
  decay: boolean;
}

export type TensorKind = 'param' | 'grad' | 'm' | 'v';

export interface NativeModel {
  tensors(): NativeTensorInfo[];
  numParams(): number;
  readTensor(kind: TensorKind, name: string): Float32Array;
  writeTensor(kind: TensorKind, name: string, data: Float32Array): void;
  getStep(): number;
  setStep(step: number): void;
  getRngState(): bigint[];
  setRngState(state: bigint[]): void;
  forward(batch: NativeBatch, wantLogits: boolean): Promise<NativeForwardResult>;
  train(steps: NativeBatch[][], optim: NativeOptim): Promise<{ steps: NativeStepStats[]; aborted: boolean }>;
  cancel(): void;
  dispose(): void;
}

export interface GemmInfo {
  backend: 'builtin' | 'blas';
  blasAvailable: boolean;
  blasLibrary: string;
  builtinIsa: string;
}

export interface NativeAddon {
  createModel(config: NativeConfig, seed: number): Promise<NativeModel>;
  numThreads(): number;
  setNumThreads(n: number): void;
  gemmInfo(): GemmInfo;
  setGemmBackend(backend: 'builtin' | 'blas'): boolean;
  gemm(transA: boolean, transB: boolean, M: number, N: number, K: number, A: Float32Array, B: Float32Array): Float32Array;
  benchGemm(transA: boolean, transB: boolean, M: number, N: number, K: number, seconds: number): Promise<number>;
  measureMachine(what: 'fma' | 'copy', threads: number, seconds: number): Promise<number>;
  gradcheckOps(seed: number): Record<string, number>;
  gradcheckModel(config: NativeConfig, seed: number, samples: number): Record<string, number>;
  cpuIsa(): string;
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

function load(): NativeAddon {
  // dist/lib/native.js sits one level deeper than lib/native.ts; node-gyp-build wants the package root.
  const candidates = [root, join(root, '..')];
  let lastError: unknown;
  for (const dir of candidates) {
    try {
      const build = require('node-gyp-build') as (dir: string) => NativeAddon;
      return build(dir);
    } catch (err) {
      lastError = err;
    }
  }
  const message = lastError instanceof Error ? lastError.message : String(lastError);
  throw Object.assign(
    new Error(`minielm: the native addon could not be loaded (${message}). Run "npm run build:native" (needs a C++17 compiler and python3) or install a prebuild.`),
    { code: 'MINIELM_NATIVE' },
  );
}

export const native: NativeAddon = load();
