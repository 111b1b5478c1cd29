// The one module that loads the native addon (prebuilds/ or build/ via node-gyp-build) and declares its
// interface. Everything else imports the typed wrappers in lib/model/.
import { createRequire } from 'node:module';
import { existsSync, statSync } from 'node:fs';
// The addon speaks the public option and result types; they are declared once, next to their API.
import type { ModelConfig, OptimizerOptions, StepResult, ForwardResult } from './model/model.ts';
import type { DistillOptions, DistillStepResult, DpoOptions, DpoStepResult, GrpoOptions, GrpoStepResult } from './model/align.ts';
import type { GenerateOptions, DecodingStrategy } from './model/generate.ts';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromNative } from './errors.ts';


export type NativeConfig = ModelConfig;
export type NativeOptim = OptimizerOptions;
export type NativeStepStats = StepResult;
export type NativeForwardResult = ForwardResult;
export type NativeDistillOptions = DistillOptions;
export type NativeDistillStats = DistillStepResult;
export type NativeDpoStats = DpoStepResult;
/** DPO options as the addon takes them: the reference travels as separate arguments. */
export type NativeDpoOptions = Omit<DpoOptions, 'reference'>;
/** GRPO options as the addon takes them: the group size resolved, the reference and old log-probs apart. */
export type NativeGrpoOptions = Omit<GrpoOptions, 'reference' | 'oldLogps'> & { group: number };
/** The addon always receives a resolved strategy and the native constraint object. */
export type NativeGenerateOptions = Omit<GenerateOptions, 'strategy' | 'wordConstraint' | 'signal'> & { strategy: DecodingStrategy; wordConstraint?: NativeWordConstraint };

export interface NativeBatch {
  tokens: Int32Array;
  targets?: Int32Array;
  lossMask?: Float32Array;
  attentionMask?: Uint8Array;
  batch: number;
  seq: number;
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
  /** Makes the model's copy on CUDA device `index` (the host copy stays the source for checkpoints). */
  toDevice(index: number): Promise<void>;
  /** 'cpu', or 'cuda:N' once toDevice(N) resolved. */
  device(): string;
}

/** The CUDA backend of this build of the addon. */
export interface CudaInfo {
  /** The addon was built with the CUDA backend (npm run build:cmake with nvcc). */
  built: boolean;
  /** Usable CUDA devices (0 without the backend, a driver or a GPU). */
  devices: number;
  /** Why there is no device, when devices is 0. */
  reason: string;
  names: string[];
}

/** The instruction-set level of each kernel family; the addon itself is compiled for plain x86-64. */
export interface IsaInfo {
  /** What the CPU supports: 'avx512' (F, VL, BW, DQ + FMA), 'avx2' (AVX2 + FMA) or 'generic'. */
  cpu: 'avx512' | 'avx2' | 'generic';
  /** The CPU's level capped by MINIELM_ISA. */
  selected: 'avx512' | 'avx2' | 'generic';
  /** Built-in GEMM kernel (also capped by MINIELM_GEMM_ISA). */
  gemm: 'avx512' | 'avx2' | 'generic';
  /** Softmax / GELU / distillation row kernels. */
  rowKernels: 'avx2' | 'generic';
  /** KV-cache decoding kernels (also capped by MINIELM_DECODE_ISA). */
  decode: 'avx512' | 'generic';
  /**
   * Decoding with `weights: 'bf16'`: 'amx' when the matrix products run on Intel AMX tiles (bf16 weights
   * and activations, fp32 sums; MINIELM_DECODE_ISA=avx512 turns it off), else the decode kernels above.
   */
  decodeBf16: 'amx' | 'avx512' | 'generic';
}

export interface GemmInfo {
  backend: 'builtin' | 'blas';
  blasAvailable: boolean;
  blasLibrary: string;
  builtinIsa: string;
}





export interface NativeKernelTiming {
  seconds: number;
  bytes: number;
  gbs: number;
  calls: number;
}


export interface NativeGeneration {
  tokens: Int32Array;
  logprob: number;
  score: number;
  eos: boolean;
  tokenLogprobs?: Float32Array;
  logits?: Float32Array;
}

export interface NativeWordConstraint {
  vocabSize(): number;
  numWords(): number;
  /** The state after `token` from `state`, or -1 when the token would leave the word list. */
  step(state: number, token: number): number;
  allowed(state: number): { tokens: Int32Array; canEnd: boolean };
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
  isaInfo(): IsaInfo;
  cudaInfo(): CudaInfo;
  /** Copies each tensor's float32 values into `buffer` at `offsets[i]` bytes, in a worker thread. */
  readTensors(model: NativeModel, kinds: string[], names: string[], buffer: Uint8Array, offsets: Float64Array): Promise<void>;
  /**
   * Converts the tensor stored in `buffer` at `offsets[i]` with `dtypes[i]` (0 F32, 1 F16, 2 BF16, 3 F64) into
   * the model, in a worker thread; resolves to the name of the first tensor holding NaN or Inf, or null.
   */
  writeTensors(model: NativeModel, kinds: string[], names: string[], buffer: Uint8Array, offsets: Float64Array, dtypes: Uint8Array): Promise<string | null>;
  /** writeTensors reading each tensor from `path` at offsets[i] (pread in the worker: no file-sized buffer here). */
  readTensorsFromFile(model: NativeModel, path: string, kinds: string[], names: string[], offsets: Float64Array, dtypes: Uint8Array): Promise<string | null>;
  /** Creates `path` with `header` then each tensor as float32 in order, and fsyncs it, in a worker. */
  writeTensorsToFile(model: NativeModel, path: string, header: Uint8Array, kinds: string[], names: string[]): Promise<void>;
  generate(model: NativeModel, prompts: Int32Array[], options: NativeGenerateOptions): Promise<NativeGeneration[][]>;
  decodeIsa(): 'avx512' | 'generic';
  /** The kernels of decoding with bf16 weights (see IsaInfo.decodeBf16). */
  decodeBf16Isa(): 'amx' | 'avx512' | 'generic';
  createWordConstraint(tokenBytes: Uint8Array, tokenOffsets: Int32Array, special: Uint8Array, wordBytes: Uint8Array, wordOffsets: Int32Array): Promise<NativeWordConstraint>;
  distillStep(student: NativeModel, teacher: NativeModel, batch: NativeBatch, options: NativeDistillOptions, optim: NativeOptim): Promise<NativeDistillStats>;
  dpoStep(policy: NativeModel, reference: NativeModel | null, batch: NativeBatch, refLogps: Float64Array | null, options: NativeDpoOptions, optim: NativeOptim): Promise<NativeDpoStats>;
  sequenceLogProbs(model: NativeModel, batch: NativeBatch): Promise<Float64Array>;
  grpoStep(policy: NativeModel, reference: NativeModel | null, batch: NativeBatch, rewards: Float64Array, oldLogps: Float64Array | null, refLogps: Float64Array | null, options: NativeGrpoOptions, optim: NativeOptim): Promise<GrpoStepResult>;
  tokenLogProbs(model: NativeModel, batch: NativeBatch): Promise<Float64Array>;
  gradcheckAlign(seed: number): Record<string, number>;
  benchAlignKernel(kind: 'reverse_kl' | 'dpo' | 'grpo', rows: number, vocab: number, seconds: number): Promise<NativeKernelTiming>;
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

/**
 * The CMake build (`npm run build:cmake`: the same sources plus the CUDA backend where nvcc is found) when
 * the user asked for it: MINIELM_ADDON names an addon file, else build-cmake/Release/minielm.node is used
 * when it exists and is newer than node-gyp's build/Release/minielm.node.
 */
function cmakeAddon(): string | undefined {
  const forced = process.env.MINIELM_ADDON;
  if (forced) return resolve(forced);
  for (const dir of [root, join(root, '..')]) {
    const cm = join(dir, 'build-cmake', 'Release', 'minielm.node');
    if (!existsSync(cm)) continue;
    const gyp = join(dir, 'build', 'Release', 'minielm.node');
    if (!existsSync(gyp) || statSync(cm).mtimeMs > statSync(gyp).mtimeMs) return cm;
  }
  return undefined;
}

/** The addon file in use ('' when node-gyp-build loaded it from where it resolves). */
export let addonPath = '';

function load(): NativeAddon {
  const cm = cmakeAddon();
  if (cm) {
    try {
      const addon = require(cm) as NativeAddon;
      addonPath = cm;
      return addon;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw Object.assign(new Error(`minielm: the CMake-built addon ${cm} could not be loaded (${message}); rebuild it (npm run build:cmake) or unset MINIELM_ADDON`), {
        code: 'MINIELM_NATIVE',
      });
    }
  }
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

// Every addon function and NativeModel method rethrows its errors (sync or rejected) as MinielmError, so
// callers see one error class whatever layer caught the problem.
function wrapped<F extends (...args: never[]) => unknown>(fn: F): F {
  return function (this: unknown, ...args: Parameters<F>): unknown {
    let out: unknown;
    try {
      out = fn.apply(this, args);
    } catch (err) {
      throw fromNative(err);
    }
    if (out instanceof Promise) return out.catch((err: unknown) => Promise.reject(fromNative(err)));
    return out;
  } as F;
}

function wrapAddon(addon: NativeAddon): NativeAddon {
  const ctor = (addon as unknown as { NativeModel?: { prototype: Record<string, unknown> } }).NativeModel;
  if (ctor) {
    for (const key of Object.getOwnPropertyNames(ctor.prototype)) {
      const v = ctor.prototype[key];
      if (key !== 'constructor' && typeof v === 'function') ctor.prototype[key] = wrapped(v as (...a: never[]) => unknown);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(addon)) out[key] = typeof v === 'function' && key !== 'NativeModel' ? wrapped(v as (...a: never[]) => unknown) : v;
  return out as unknown as NativeAddon;
}

export const native: NativeAddon = wrapAddon(load());
