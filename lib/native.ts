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
  /** Adds a scalar head on the last real token (relevance scorer). */
  score_head?: boolean;
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
  score(batch: NativeBatch): Promise<Float32Array>;
  trainScore(steps: (NativeBatch & { labels: Float32Array; weights?: Float32Array })[], optim: NativeOptim): Promise<{ steps: NativeStepStats[]; aborted: boolean }>;
  cancel(): void;
  dispose(): void;
}

export interface GemmInfo {
  backend: 'builtin' | 'blas';
  blasAvailable: boolean;
  blasLibrary: string;
  builtinIsa: string;
}

export interface NativeDistillOptions {
  loss?: 'reverse_kl' | 'forward_kl' | 'jsd';
  beta?: number;
  temperature?: number;
  ceWeight?: number;
}

export interface NativeDistillStats extends NativeStepStats {
  /** Weighted mean divergence (the chosen loss: reverse KL by default). */
  kl: number;
  /** Weighted mean cross-entropy, only when ceWeight > 0. */
  ce?: number;
}

export interface NativeDpoOptions {
  lossType?: 'sigmoid' | 'ipo' | 'hinge';
  beta?: number;
  labelSmoothing?: number;
}

export interface NativeDpoStats {
  loss: number;
  'rewards/chosen': number;
  'rewards/rejected': number;
  'rewards/margins': number;
  'rewards/accuracies': number;
  'logps/chosen': number;
  'logps/rejected': number;
  gradNorm: number;
  lr: number;
  tokens: number;
  step: number;
}

export interface NativeKernelTiming {
  seconds: number;
  bytes: number;
  gbs: number;
  calls: number;
}

export interface NativeGenerateOptions {
  strategy: 'greedy' | 'sample' | 'beam';
  maxNewTokens: number;
  eosTokenId?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  numBeams?: number;
  numReturnSequences?: number;
  lengthPenalty?: number;
  tokenLogprobs?: boolean;
  logits?: boolean;
  weights?: 'fp32' | 'bf16';
}

export interface NativeGeneration {
  tokens: Int32Array;
  logprob: number;
  score: number;
  eos: boolean;
  tokenLogprobs?: Float32Array;
  logits?: Float32Array;
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
  gradcheckScore(config: NativeConfig, seed: number, samples: number): Record<string, number>;
  cpuIsa(): string;
  generate(model: NativeModel, prompts: Int32Array[], options: NativeGenerateOptions): Promise<NativeGeneration[][]>;
  decodeIsa(): 'avx512' | 'generic';
  distillStep(student: NativeModel, teacher: NativeModel, batch: NativeBatch, options: NativeDistillOptions, optim: NativeOptim): Promise<NativeDistillStats>;
  dpoStep(policy: NativeModel, reference: NativeModel | null, batch: NativeBatch, refLogps: Float64Array | null, options: NativeDpoOptions, optim: NativeOptim): Promise<NativeDpoStats>;
  sequenceLogProbs(model: NativeModel, batch: NativeBatch): Promise<Float64Array>;
  gradcheckAlign(seed: number): Record<string, number>;
  benchAlignKernel(kind: 'reverse_kl' | 'dpo', rows: number, vocab: number, seconds: number): Promise<NativeKernelTiming>;
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
